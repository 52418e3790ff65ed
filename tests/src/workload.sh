# The unlinks every end-to-end test makes, in a fresh directory. Each unlink
# runs as its own `unlink` process; its pid is printed so tests can match it.
cd "$(mktemp -d)" || exit 99
long_dir=$(printf '%0200d' 0 | tr 0 d)
long_name=$long_dir/$(printf '%0100d' 0 | tr 0 f)
newline=$(printf 'new\nline')
bad_utf8=$(printf 'bad\377name')
mkdir "$long_dir"
touch a 'with space' '日本語.txt' "$newline" "$bad_utf8" "$long_name"
step=0
for name in a 'with space' '日本語.txt' "$newline" "$bad_utf8" "$long_name" missing; do
    unlink "$name" 2>/dev/null &
    echo "WORKLOAD $step $!"
    wait $!
    step=$((step + 1))
done
exit 3
