//! End-to-end tests of `dbl tokenize`: runs the built binary on stdin.
//! Expected token lists are NLTK 3.10.4 `NLTKWordTokenizer` outputs.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbl"))
        .arg("tokenize")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dbl");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn lower_cases_by_default_and_prints_one_array_per_line() {
    let out = run(&[], "A Dog's \"toy\".\n\nCan't stop\r\n".as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec!["a", "dog", "'s", "``", "toy", "''", "."],
            vec![],
            vec!["ca", "n't", "stop"],
        ]
    );
}

#[test]
fn keep_case_keeps_case() {
    let out = run(&["--keep-case"], b"They'LL go");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "[\"They\",\"'LL\",\"go\"]\n"
    );
}

#[test]
fn invalid_utf8_fails_naming_the_line() {
    let out = run(&[], b"fine\nbad \xff\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stdin line 2") && err.contains("UTF-8"),
        "{err}"
    );
}
