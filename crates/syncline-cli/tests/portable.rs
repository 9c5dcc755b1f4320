//! `syncline export` and `syncline import` against the real relay binary:
//! the exported file is standard Automerge (the `automerge` crate loads
//! it), a file changed and saved by Automerge imports as a new document
//! the relay serves; bad files are bad input (exit 2).

mod support;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ReadDoc};
use serde_json::json;
use support::{Relay, json, run, run_ok, stderr};

#[tokio::test]
async fn export_loads_in_automerge_and_a_changed_copy_imports_as_a_new_document() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let r = relay.url();
    let url = run_ok(&["--relay", &r, "create", "--init", r#"{"items":["milk"]}"#]).await;
    let url = url.trim();
    run_ok(&["--relay", &r, "push", url, "/items", r#""bread""#]).await;

    let file = files.path().join("list.automerge");
    let file = file.to_str().unwrap();
    assert_eq!(
        run_ok(&["--relay", &r, "export", url, "-o", file]).await,
        ""
    );
    let bytes = std::fs::read(file).unwrap();
    let to_stdout = run(&["--relay", &r, "export", url]).await;
    assert!(to_stdout.status.success(), "{}", stderr(&to_stdout));
    assert_eq!(
        AutoCommit::load(&to_stdout.stdout).unwrap().get_heads(),
        AutoCommit::load(&bytes).unwrap().get_heads(),
        "-o FILE and standard output hold the same document"
    );

    let mut doc = AutoCommit::load(&bytes).unwrap();
    let items = doc.get(ROOT, "items").unwrap().unwrap().1;
    assert_eq!(doc.length(&items), 2, "both changes are in the export");
    let history = doc.get_changes(&[]).len();
    doc.insert(&items, 2, "eggs").unwrap();
    doc.commit();
    let changed = files.path().join("changed.automerge");
    std::fs::write(&changed, doc.save()).unwrap();

    let imported = run_ok(&["--relay", &r, "import", changed.to_str().unwrap()]).await;
    let imported = imported.trim();
    assert!(
        imported.starts_with("syncline:") && imported != url,
        "{imported:?}"
    );
    let got = run_ok(&["--relay", &r, "get", imported]).await;
    assert_eq!(json(&got), json!({"items": ["milk", "bread", "eggs"]}));
    // Fetched from the relay by a fresh replica: the whole history.
    let again = run(&["--relay", &r, "export", imported]).await;
    let mut again = AutoCommit::load(&again.stdout).unwrap();
    assert_eq!(
        again.get_heads(),
        doc.get_heads(),
        "the same changes, by hash"
    );
    assert_eq!(again.get_changes(&[]).len(), history + 1);
}

#[tokio::test]
async fn bad_files_are_bad_input_and_create_nothing() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let relay = Relay::start(data.path()).await;
    let r = relay.url();
    let garbage = files.path().join("garbage");
    std::fs::write(&garbage, b"not automerge at all").unwrap();
    let out = run(&["--relay", &r, "import", garbage.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not an Automerge document"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());

    let mut dated = AutoCommit::new();
    dated
        .put(ROOT, "when", automerge::ScalarValue::Timestamp(0))
        .unwrap();
    let dated_file = files.path().join("dated");
    std::fs::write(&dated_file, dated.save()).unwrap();
    let out = run(&["--relay", &r, "import", dated_file.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("timestamp"), "{}", stderr(&out));

    let missing = files.path().join("missing");
    let out = run(&["--relay", &r, "import", missing.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}
