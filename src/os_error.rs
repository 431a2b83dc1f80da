//! Operating-system errors in words (issue 13 item 10): the kernel's terse
//! strings ("No such device (os error 19)" for a folder where a file belongs,
//! "Too many levels of symbolic links") become what is wrong and what to
//! check. The CLI rewrites every `std::io::Error` in an error chain with
//! [`in_words`]; [`check_file`] and [`check_dir`] name the problem with a
//! path before any work, and [`check_out_file`] / [`check_out_dir`] do the
//! same for where a command will write (an `--out`), so that a file given
//! for a folder or a missing folder is named as the user wrote it, before
//! any work and never under a temporary name; [`describe`] is the whole
//! `error:` line.

use std::io;
use std::path::Path;

/// What `e` means for the path it happened on, in words.
pub fn in_words(e: &io::Error) -> String {
    let errno = e.raw_os_error();
    let words = match errno {
        Some(libc::ENOENT) => "does not exist",
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "permission denied (check the owner and mode of the file and of its folders)"
        }
        Some(libc::EISDIR) => "is a folder, where a file was expected",
        Some(libc::ENOTDIR) => "a part of this path is a file, where a folder was expected",
        Some(libc::ENODEV) => {
            "is not a regular file (a folder or a device, where a file was expected)"
        }
        Some(libc::ELOOP) => "is a symbolic link loop (links that point at each other)",
        Some(libc::ENOSPC) => "no space left on the device (the disk is full)",
        Some(libc::EDQUOT) => "disk quota exceeded",
        Some(libc::EROFS) => "is on a read-only file system",
        Some(libc::ENAMETOOLONG) => "the path is too long",
        Some(libc::EEXIST) => "already exists",
        Some(libc::ENOTEMPTY) => "the folder is not empty",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "too many open files (raise `ulimit -n`)",
        Some(libc::EIO) => "input/output error reading the disk (the device may be failing)",
        Some(libc::EXDEV) => "cannot move across file systems",
        Some(libc::ETXTBSY) => "the file is busy (being executed)",
        _ => return e.to_string(),
    };
    format!(
        "{words} ({})",
        e.to_string().split(" (os error").next().unwrap_or("")
    )
}

/// `Err(words)` unless `path` is a readable regular file (after links).
pub fn check_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err("is a folder, where a file was expected".into()),
        Ok(m) if !m.is_file() => Err("is not a regular file".into()),
        Ok(_) => std::fs::File::open(path)
            .map(drop)
            .map_err(|e| in_words(&e)),
        Err(e) => Err(in_words(&e)),
    }
}

/// `Err(words)` unless `path` is a folder (after links).
pub fn check_dir(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err("is a file, where a folder was expected".into()),
        Err(e) => Err(in_words(&e)),
    }
}

/// `Err(words)` unless a file can be created at `path`: its folder exists
/// (the folder is not created for a file output) and `path` is not itself a
/// folder. An existing file at `path` is fine (it is replaced).
pub fn check_out_file(path: &Path) -> Result<(), String> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "its folder {} is a file, where a folder was expected",
                parent.display()
            ));
        }
        Err(e) => return Err(format!("its folder {} {}", parent.display(), in_words(&e))),
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err("is a folder, where a file was expected".into()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(in_words(&e)),
    }
}

/// `Err(words)` unless `path` is a folder or does not exist yet (a command
/// creates its output folder, parents included): an existing file, a
/// symbolic link loop or an unreadable path is named.
pub fn check_out_dir(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err("is a file, not a folder (an output folder was expected here)".into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A dangling link, or an ancestor that is a file, is not "missing".
            if std::fs::symlink_metadata(path).is_ok() {
                return Err("is a symbolic link to a path that does not exist".into());
            }
            Ok(())
        }
        Err(e) => Err(in_words(&e)),
    }
}

/// The line the CLI prints after `error: `: the error and its causes
/// joined by ": ", skipping a cause whose text the message already contains
/// (many error types embed their source's text), with operating-system
/// errors rewritten in words ([`in_words`]). The Python binding raises its
/// exceptions with the same text.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = String::new();
    let mut os = Vec::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            os.push((io.to_string(), in_words(io)));
        }
        let text = c.to_string();
        if msg.is_empty() {
            msg = text;
        } else if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    for (raw, words) in os {
        msg = msg.replace(&raw, &words);
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_words() {
        let w = |n| in_words(&io::Error::from_raw_os_error(n));
        assert!(
            w(libc::EACCES).starts_with("permission denied"),
            "{}",
            w(libc::EACCES)
        );
        assert!(w(libc::ENODEV).contains("where a file was expected"));
        assert!(w(libc::ELOOP).contains("symbolic link loop"));
        assert!(w(libc::ENOSPC).contains("disk is full"));
        assert!(!w(libc::ENOENT).contains("os error"));
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert_eq!(check_dir(d), Ok(()));
        assert!(check_file(d).unwrap_err().contains("is a folder"));
        let (a, b) = (d.join("a"), d.join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        assert!(check_file(&a).unwrap_err().contains("symbolic link loop"));
        assert!(check_dir(&a).unwrap_err().contains("symbolic link loop"));
        assert!(
            check_file(&d.join("none"))
                .unwrap_err()
                .contains("does not exist")
        );
        std::fs::write(d.join("f"), "x").unwrap();
        assert!(check_dir(&d.join("f")).unwrap_err().contains("is a file"));
        // Outputs: a file where a folder belongs, a missing folder, a loop.
        assert_eq!(check_out_dir(&d.join("new/sub")), Ok(()));
        assert_eq!(check_out_dir(d), Ok(()));
        assert!(
            check_out_dir(&d.join("f"))
                .unwrap_err()
                .contains("is a file, not a folder")
        );
        assert!(
            check_out_dir(&a)
                .unwrap_err()
                .contains("symbolic link loop")
        );
        assert_eq!(check_out_file(&d.join("f")), Ok(()));
        assert_eq!(check_out_file(&d.join("new.npy")), Ok(()));
        let e = check_out_file(&d.join("none/x.npy")).unwrap_err();
        assert!(e.contains("none") && e.contains("does not exist"), "{e}");
        let e = check_out_file(&d.join("f/x.npy")).unwrap_err();
        assert!(e.contains("is a file, where a folder"), "{e}");
        assert!(check_out_file(d).unwrap_err().contains("is a folder"));
    }
}
