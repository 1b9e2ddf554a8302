//! Upload sources: what is refused, what a walk sees, what a zip holds.

use super::*;
use std::io::Read;

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("out/sub/empty")).unwrap();
    std::fs::write(root.join("out/a.txt"), "a").unwrap();
    std::fs::write(root.join("out/sub/b.txt"), "bb").unwrap();
}

fn failure(result: Result<PathBuf, StepError>) -> String {
    match result {
        Err(StepError::Failure(message)) => message,
        other => panic!("expected a failure: {other:?}"),
    }
}

#[test]
fn sources_outside_the_build_folder_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir().unwrap();
    let root = build.path().canonicalize().unwrap();
    tree(&root);
    std::os::unix::fs::symlink(outside.path(), root.join("away")).unwrap();
    std::os::unix::fs::symlink(root.join("out"), root.join("here")).unwrap();
    std::os::unix::fs::symlink(root.join("nothing"), root.join("dangling")).unwrap();

    assert_eq!(
        failure(resolve_source(&root, "out/../../x")),
        "upload source \"out/../../x\" must not contain \"..\""
    );
    assert!(failure(resolve_source(&root, "/etc/passwd")).contains("relative path"));
    assert_eq!(
        failure(resolve_source(&root, "missing")),
        "upload source \"missing\" does not exist"
    );
    assert_eq!(
        failure(resolve_source(&root, "away")),
        "upload source \"away\" leads outside the build folder through a symlink"
    );
    assert!(failure(resolve_source(&root, "away/file")).contains("does not exist"));
    assert!(failure(resolve_source(&root, "dangling")).contains("symlink to nothing"));
    // A symlink that stays inside is followed, at the top only.
    assert_eq!(resolve_source(&root, "here").unwrap(), root.join("out"));
    assert_eq!(
        resolve_source(&root, "out/sub/b.txt").unwrap(),
        root.join("out/sub/b.txt")
    );
}

#[test]
fn a_walk_skips_symlinks_and_special_files() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s").unwrap();
    let build = tempfile::tempdir().unwrap();
    let root = build.path();
    tree(root);
    std::os::unix::fs::symlink(outside.path(), root.join("out/away")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root.join("out/secret")).unwrap();
    let fifo = std::ffi::CString::new(root.join("out/fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

    let mut log = String::new();
    let entries = walk(&root.join("out"), &mut |line| {
        log.push_str(line);
        log.push('\n');
    })
    .unwrap();
    let seen: Vec<(&str, Option<u64>)> = entries
        .iter()
        .map(|e| (e.relative.as_str(), e.size))
        .collect();
    assert_eq!(
        seen,
        [
            ("a.txt", Some(1)),
            ("sub", None),
            ("sub/b.txt", Some(2)),
            ("sub/empty", None)
        ]
    );
    assert!(log.contains("skipping away: a symlink"), "{log}");
    assert!(log.contains("skipping secret: a symlink"), "{log}");
    assert!(log.contains("skipping fifo: not a regular file"), "{log}");
}

#[test]
fn a_zipped_folder_holds_paths_relative_to_it() {
    let build = tempfile::tempdir().unwrap();
    let root = build.path();
    tree(root);
    std::os::unix::fs::symlink("/etc/passwd", root.join("out/passwd")).unwrap();
    let zip_path = root.join("out.zip");
    let entries = zip_source(&root.join("out"), &zip_path, &mut |_| {}, &|| false).unwrap();
    assert_eq!(entries, 4);

    let mut archive = zip::ZipArchive::new(File::open(&zip_path).unwrap()).unwrap();
    let mut names: Vec<String> = archive.file_names().map(str::to_string).collect();
    names.sort();
    assert_eq!(names, ["a.txt", "sub/", "sub/b.txt", "sub/empty/"]);
    let mut content = String::new();
    let mut b = archive.by_name("sub/b.txt").unwrap();
    assert_eq!(b.compression(), zip::CompressionMethod::Deflated);
    b.read_to_string(&mut content).unwrap();
    assert_eq!(content, "bb");
    drop(b);

    // A single file zips as one entry of its own name.
    let single = root.join("single.zip");
    zip_source(&root.join("out/sub/b.txt"), &single, &mut |_| {}, &|| false).unwrap();
    let archive = zip::ZipArchive::new(File::open(&single).unwrap()).unwrap();
    assert_eq!(archive.file_names().collect::<Vec<_>>(), ["b.txt"]);
}

#[test]
fn caps_are_shown_in_mebibytes() {
    assert_eq!(mebibytes(1024 * 1024), "1");
    assert_eq!(mebibytes(1536 * 1024), "1.5");
}
