//! Child commands, echoed before they run (`$ cmd args` on stderr).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitStatus, Output, Stdio};

use anyhow::{bail, Context, Result};

/// Print the command line the way a shell user would type it, with the
/// variables it sets explicitly (`DEBIAN_FRONTEND=noninteractive apt-get ...`).
pub fn echo(command: &Command) {
    let mut words: Vec<String> = command
        .get_envs()
        .filter_map(|(key, value)| {
            Some(format!("{}={}", key.to_string_lossy(), shell_quote(value?)))
        })
        .collect();
    words.push(shell_quote(command.get_program()));
    words.extend(command.get_args().map(shell_quote));
    eprintln!("$ {}", words.join(" "));
}

pub fn shell_quote(arg: &OsStr) -> String {
    let text = arg.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The cargo that runs xtask (`CARGO`), so a pinned toolchain builds everything.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn program(command: &Command) -> String {
    command.get_program().to_string_lossy().into_owned()
}

/// Echo and run; fail with the command's name when it fails.
pub fn run(command: &mut Command) -> Result<()> {
    echo(command);
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", program(command)))?;
    if !status.success() {
        bail!("{} failed ({status})", program(command));
    }
    Ok(())
}

/// Echo and run, capturing stdout; stderr goes to the terminal.
pub fn output(command: &mut Command) -> Result<String> {
    echo(command);
    let Output { status, stdout, .. } = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", program(command)))?;
    if !status.success() {
        bail!("{} failed ({status})", program(command));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// Echo and run with stderr shown live and also returned, for callers that
/// recognise a failure by its message.
pub fn run_tee_stderr(command: &mut Command) -> Result<(ExitStatus, String)> {
    echo(command);
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program(command)))?;
    let mut text = String::new();
    // stdout is not piped, so reading stderr to its end cannot deadlock.
    for line in BufReader::new(child.stderr.take().expect("piped")).split(b'\n') {
        let line = line.context("reading stderr")?;
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(&line)?;
        stderr.write_all(b"\n")?;
        text.push_str(&String::from_utf8_lossy(&line));
        text.push('\n');
    }
    Ok((child.wait()?, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(
            shell_quote(OsStr::new("target/debug/lesson-02")),
            "target/debug/lesson-02"
        );
        assert_eq!(shell_quote(OsStr::new("touch a; rm a")), "'touch a; rm a'");
        assert_eq!(shell_quote(OsStr::new("it's")), "'it'\\''s'");
        assert_eq!(shell_quote(OsStr::new("")), "''");
    }
}
