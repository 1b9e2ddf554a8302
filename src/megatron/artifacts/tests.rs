//! Artifact storage against hostile paths and archives, on real files.

use super::archive::*;
use super::error::{human_bytes, ArtifactError};
use super::files::*;
use super::paths::*;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

fn options() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
}

/// Writes a zip with these (name, contents) files; a name ending in `/`
/// is a folder.
fn write_zip(path: &Path, files: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(File::create(path).expect("create zip"));
    for (name, contents) in files {
        if let Some(folder) = name.strip_suffix('/') {
            zip.add_directory(folder, options()).expect("add folder");
        } else {
            zip.start_file(*name, options()).expect("start file");
            zip.write_all(contents).expect("write entry");
        }
    }
    zip.finish().expect("finish zip");
}

/// Every path under `dir`, relative, sorted (folders too).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.expect("entry");
            let path = entry.path();
            out.push(
                path.strip_prefix(root)
                    .expect("inside")
                    .display()
                    .to_string(),
            );
            if entry.file_type().expect("type").is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn paths_must_stay_inside() {
    for good in ["a", "a/b.txt", "dist/app.tar.gz", "a b/c", ".hidden"] {
        assert_eq!(path_problem(good), None, "{good}");
    }
    for bad in [
        "",
        "/abs",
        "..",
        "a/../../b",
        "a/..",
        "a//b",
        "a/",
        "/",
        "./a",
        "a\\b",
        "C:x",
        "a\nb",
        "a/\u{0}",
        ".constructicon-partial-x",
    ] {
        assert!(path_problem(bad).is_some(), "{bad:?} accepted");
    }
    let error = check_path("../x").expect_err("refused");
    assert!(
        matches!(error, ArtifactError::BadPath(ref m) if m.contains("../x") && m.contains("..")),
        "{error}"
    );
}

#[test]
fn a_good_zip_is_extracted_with_its_folders() {
    let temp = tempfile::tempdir().expect("tempdir");
    let archive = temp.path().join("site.zip");
    write_zip(
        &archive,
        &[
            ("index.html", b"<h1>hi</h1>"),
            ("css/", b""),
            ("css/site.css", b"body {}"),
            ("deep/er/still/file.txt", b"deep"),
            ("empty/", b""),
        ],
    );
    let store = temp.path().join("artifacts");
    fs::create_dir(&store).expect("mkdir");
    let target = store.join("site");
    // What was there is replaced.
    fs::create_dir_all(target.join("old")).expect("old");
    let written = extract_zip(&archive, &target, 1 << 20, 1 << 20).expect("extracted");
    assert_eq!(written, 11 + 7 + 4);
    assert_eq!(
        tree(&target),
        [
            "css",
            "css/site.css",
            "deep",
            "deep/er",
            "deep/er/still",
            "deep/er/still/file.txt",
            "empty",
            "index.html"
        ]
    );
    assert_eq!(
        fs::read(target.join("deep/er/still/file.txt")).expect("read"),
        b"deep"
    );
    assert_eq!(
        tree(&store)
            .iter()
            .filter(|p| p.contains(TEMP_PREFIX))
            .count(),
        0
    );
    let listed: Vec<(String, u64)> = list_artifacts(&store)
        .expect("list")
        .into_iter()
        .map(|a| (a.path, a.size))
        .collect();
    assert_eq!(
        listed,
        [
            ("site/css/site.css".to_string(), 7),
            ("site/deep/er/still/file.txt".to_string(), 4),
            ("site/index.html".to_string(), 11),
        ]
    );
}

#[test]
fn zip_slip_entries_are_refused_and_nothing_is_written() {
    for evil in [
        "../evil",
        "/abs",
        "a/../../evil",
        "a/../b",
        "a\\..\\..\\evil",
        "ok//x",
    ] {
        let temp = tempfile::tempdir().expect("tempdir");
        let archive = temp.path().join("evil.zip");
        // A good entry first: the refusal must not leave it behind.
        write_zip(&archive, &[("good.txt", b"fine"), (evil, b"pwned")]);
        let store = temp.path().join("store").join("artifacts");
        fs::create_dir_all(&store).expect("mkdir");
        let target = store.join("out");
        let error = extract_zip(&archive, &target, 1 << 20, 1 << 20).expect_err(evil);
        assert!(
            matches!(error, ArtifactError::BadPath(ref m) if m.contains(&evil.escape_debug().to_string())),
            "{evil}: {error}"
        );
        assert!(!target.exists(), "{evil}: the target exists");
        assert!(tree(&store).is_empty(), "{evil}: {:?}", tree(&store));
        let outside = tree(temp.path());
        assert_eq!(outside, ["evil.zip", "store", "store/artifacts"], "{evil}");
    }
}

#[test]
fn a_symlink_entry_is_refused() {
    let temp = tempfile::tempdir().expect("tempdir");
    let archive = temp.path().join("link.zip");
    let mut zip = zip::ZipWriter::new(File::create(&archive).expect("create"));
    zip.start_file("a.txt", options()).expect("start");
    zip.write_all(b"a").expect("write");
    zip.add_symlink("passwd", "/etc/passwd", options())
        .expect("symlink");
    zip.finish().expect("finish");
    let target = temp.path().join("out");
    let error = extract_zip(&archive, &target, 1 << 20, 1 << 20).expect_err("refused");
    assert!(
        matches!(error, ArtifactError::BadPath(ref m) if m.contains("passwd") && m.contains("symbolic link")),
        "{error}"
    );
    assert!(!target.exists());
    assert_eq!(tree(temp.path()), ["link.zip"]);
}

/// Rewrites the file type in every central-directory entry's external
/// attributes: the zip writer cannot make device or fifo entries.
fn set_file_type(archive: &Path, file_type: u32) {
    let mut bytes = fs::read(archive).expect("read");
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(4).position(|w| w == b"PK\x01\x02") {
        let header = at + found;
        let attributes = header + 38;
        let mut value = [0u8; 4];
        value.copy_from_slice(&bytes[attributes..attributes + 4]);
        let mode = (u32::from_le_bytes(value) >> 16) & !S_IFMT | file_type;
        bytes[attributes..attributes + 4].copy_from_slice(&(mode << 16).to_le_bytes());
        at = header + 4;
    }
    fs::write(archive, bytes).expect("write");
}

#[test]
fn device_and_fifo_entries_are_refused() {
    for (file_type, what) in [
        (0o020_000, "character device"),
        (0o060_000, "block device"),
        (0o010_000, "fifo"),
    ] {
        let temp = tempfile::tempdir().expect("tempdir");
        let archive = temp.path().join("dev.zip");
        write_zip(&archive, &[("null", b"")]);
        set_file_type(&archive, file_type);
        let target = temp.path().join("out");
        let error = extract_zip(&archive, &target, 1 << 20, 1 << 20).expect_err(what);
        assert!(
            matches!(error, ArtifactError::BadPath(ref m) if m.contains("null") && m.contains("not a plain file")),
            "{what}: {error}"
        );
        assert!(!target.exists(), "{what}");
    }
}

#[test]
fn clashing_entries_are_refused() {
    // (Duplicate names cannot reach us: the zip reader keeps one entry
    // per name.)
    let clashes: [[(&str, &[u8]); 2]; 2] =
        [[("a", b"1"), ("a/b", b"2")], [("a/b", b"1"), ("a", b"2")]];
    for files in &clashes {
        let temp = tempfile::tempdir().expect("tempdir");
        let archive = temp.path().join("clash.zip");
        write_zip(&archive, files);
        let target = temp.path().join("out");
        match extract_zip(&archive, &target, 1 << 20, 1 << 20) {
            Err(ArtifactError::BadPath(m)) => assert!(m.contains("\"a"), "{m}"),
            other => panic!("{files:?}: {other:?}"),
        }
        assert!(!target.exists());
    }
}

#[test]
fn a_zip_bomb_hits_the_cap_and_leaves_nothing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let archive = temp.path().join("bomb.zip");
    let mut zip = zip::ZipWriter::new(File::create(&archive).expect("create"));
    zip.start_file("zeros", options().compression_level(Some(9)))
        .expect("start");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..200 {
        zip.write_all(&zeros).expect("write");
    }
    zip.finish().expect("finish");
    assert!(
        fs::metadata(&archive).expect("meta").len() < 1 << 20,
        "it compresses"
    );
    let target = temp.path().join("out");
    let cap = 10 << 20;
    let error = extract_zip(&archive, &target, cap, cap).expect_err("too large");
    assert!(
        matches!(error, ArtifactError::TooLarge { cap: c } if c == cap),
        "{error}"
    );
    assert!(error.to_string().contains("10 MiB"), "{error}");
    assert!(!target.exists());
    assert_eq!(tree(temp.path()), ["bomb.zip"]);
}

#[test]
fn a_corrupt_archive_is_a_bad_archive() {
    let temp = tempfile::tempdir().expect("tempdir");
    let archive = temp.path().join("junk.zip");
    fs::write(&archive, b"this is not a zip").expect("write");
    let error =
        extract_zip(&archive, &temp.path().join("out"), 1 << 20, 1 << 20).expect_err("refused");
    assert!(matches!(error, ArtifactError::BadArchive(_)), "{error}");
}

#[test]
fn reads_stay_inside_and_skip_links() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("artifacts").join("1");
    fs::create_dir_all(dir.join("site/sub")).expect("mkdir");
    fs::write(dir.join("site/index.html"), "<p>").expect("write");
    fs::write(dir.join("a.txt"), "hello").expect("write");
    fs::write(temp.path().join("secret"), "secret").expect("write");
    std::os::unix::fs::symlink(temp.path().join("secret"), dir.join("link")).expect("link");
    std::os::unix::fs::symlink(temp.path(), dir.join("up")).expect("link");

    let file = open_artifact(&dir, "a.txt").expect("a.txt");
    assert_eq!(file.size, 5);
    let index = open_artifact(&dir, "site").expect("index");
    assert_eq!(index.path, "site/index.html");
    assert!(matches!(
        open_artifact(&dir, "site/sub"),
        Err(ArtifactError::NotFound(_))
    ));
    assert!(matches!(
        open_artifact(&dir, "nope"),
        Err(ArtifactError::NotFound(_))
    ));
    assert!(matches!(
        open_artifact(&dir, "a.txt/x"),
        Err(ArtifactError::NotFound(_))
    ));
    assert!(matches!(
        open_artifact(&dir, "link"),
        Err(ArtifactError::NotFound(_))
    ));
    assert!(matches!(
        open_artifact(&dir, "up/secret"),
        Err(ArtifactError::NotFound(_))
    ));
    assert!(matches!(
        open_artifact(&dir, "../secret"),
        Err(ArtifactError::BadPath(_))
    ));
    assert!(matches!(
        open_artifact(&dir, "/etc/passwd"),
        Err(ArtifactError::BadPath(_))
    ));
    assert!(matches!(
        open_artifact(&temp.path().join("none"), "a.txt"),
        Err(ArtifactError::NotFound(_))
    ));
    // Links are not listed either.
    let listed: Vec<String> = list_artifacts(&dir)
        .expect("list")
        .into_iter()
        .map(|a| a.path)
        .collect();
    assert_eq!(listed, ["a.txt", "site/index.html"]);
}

#[test]
fn links_and_content_types() {
    let url = BTreeMap::from([
        ("docs".to_string(), "index.html".to_string()),
        ("report".to_string(), "/a b/c.html".to_string()),
        ("bin".to_string(), String::new()),
    ]);
    let links = links(7, &url);
    assert_eq!(links["docs"], "/api/v1/builds/7/artifacts/docs/index.html");
    assert_eq!(
        links["report"],
        "/api/v1/builds/7/artifacts/report/a%20b/c.html"
    );
    assert_eq!(links["bin"], "/api/v1/builds/7/artifacts/bin");
    assert_eq!(content_type("a/b.HTML"), "text/html; charset=utf-8");
    assert_eq!(content_type("build.log"), "text/plain; charset=utf-8");
    assert_eq!(content_type("x.tar.gz"), "application/gzip");
    assert_eq!(content_type("x.wasm"), "application/wasm");
    assert_eq!(content_type("Makefile"), "application/octet-stream");
    assert_eq!(content_type(".bashrc"), "application/octet-stream");
    assert_eq!(human_bytes(1 << 20), "1 MiB");
    assert_eq!(human_bytes(1000), "1000 bytes");
}

#[test]
fn an_unzip_stopped_by_its_caller_leaves_nothing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let archive = temp.path().join("many.zip");
    let names: Vec<String> = (0..50).map(|i| format!("d{}/f{i}.txt", i % 5)).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    write_zip(&archive, &files);
    let parent = temp.path().join("build");
    fs::create_dir(&parent).expect("mkdir");
    // As a lease found gone after twenty entries.
    let mut seen = 0;
    let error = extract_zip_in(&archive, &parent, &mut |progress| {
        seen = progress.entries;
        if progress.entries > 20 {
            return Err(ArtifactError::BadPath("stopped".into()));
        }
        Ok(())
    })
    .expect_err("stopped");
    assert!(matches!(error, ArtifactError::BadPath(_)), "{error}");
    assert_eq!(seen, 21);
    assert_eq!(tree(&parent), Vec::<String>::new(), "nothing is left");
}

#[test]
fn an_unzip_whose_folder_is_taken_away_does_not_make_it_again() {
    let temp = tempfile::tempdir().expect("tempdir");
    let archive = temp.path().join("site.zip");
    write_zip(
        &archive,
        &[
            ("a/one.txt", b"1"),
            ("b/c/two.txt", b"2"),
            ("three.txt", b"3"),
        ],
    );
    let parent = temp.path().join("build");
    fs::create_dir(&parent).expect("mkdir");
    // As a requeue would, between two entries: the build's folder goes.
    let error = extract_zip_in(&archive, &parent, &mut |progress| {
        if progress.entries == 2 && parent.exists() {
            fs::rename(&parent, temp.path().join("aside")).expect("aside");
        }
        Ok(())
    })
    .expect_err("its folder is gone");
    assert!(matches!(error, ArtifactError::Io(_)), "{error}");
    assert!(!parent.exists(), "the build's folder is not made again");
}

#[test]
fn swapping_in_moves_a_folder_aside_and_keeps_the_old_one_on_failure() {
    let temp = tempfile::tempdir().expect("tempdir");
    let target = temp.path().join("site");
    fs::create_dir_all(target.join("old")).expect("mkdir");
    let fresh = TempPath::fresh_in(temp.path()).expect("temp");
    fs::create_dir(fresh.path()).expect("mkdir");
    fs::write(fresh.path().join("new.txt"), "new").expect("write");
    let replaced = fresh.swap_in(&target).expect("swapped");
    // The old folder waits aside, under a partial name, until dropped.
    let aside = replaced.expect("the old folder");
    assert!(aside.path().join("old").is_dir());
    assert!(target.join("new.txt").is_file());
    drop(aside);
    assert_eq!(tree(temp.path()), ["site", "site/new.txt"]);

    // A rename that cannot happen (the temp is gone) puts the old one back.
    let missing = TempPath::fresh_in(temp.path()).expect("temp");
    missing.swap_in(&target).expect_err("nothing to rename");
    assert_eq!(tree(temp.path()), ["site", "site/new.txt"]);
}

#[test]
fn discarding_a_builds_artifacts_takes_the_folder_away_at_once() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("artifacts").join("3");
    fs::create_dir_all(dir.join("site")).expect("mkdir");
    fs::write(dir.join("site/index.html"), "<p>").expect("write");
    discard_build_artifacts(&dir).expect("discarded");
    assert!(!dir.exists());
    assert_eq!(tree(&temp.path().join("artifacts")), Vec::<String>::new());
    // No folder: nothing to do.
    discard_build_artifacts(&dir).expect("nothing there");
}
