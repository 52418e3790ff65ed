//! Child commands, echoed before they run (`$ cmd args` on stderr).

use std::ffi::OsStr;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Print the command line the way a shell user would type it.
pub fn echo(command: &Command) {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(arg));
    }
    eprintln!("$ {line}");
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

/// Echo and run; fail with the command's name when it fails.
pub fn run(command: &mut Command) -> Result<()> {
    echo(command);
    let program = command.get_program().to_string_lossy().into_owned();
    let status = command
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{program} failed ({status})");
    }
    Ok(())
}

/// Echo and run, capturing stdout; stderr goes to the terminal.
pub fn output(command: &mut Command) -> Result<String> {
    echo(command);
    let program = command.get_program().to_string_lossy().into_owned();
    let Output { status, stdout, .. } = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{program} failed ({status})");
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
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
