//! The wasm core in headless Chromium, against the real IndexedDB.

use syncline_wasm::Core;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", js_sys::Math::random())
}

fn no_events() -> js_sys::Function {
    js_sys::Function::new_no_args("")
}

const KEY: [u8; 32] = [42; 32];

async fn open(name: &str) -> Core {
    Core::open(name.to_string(), None, no_events(), &KEY)
        .await
        .unwrap()
}

fn json(value: &JsValue) -> String {
    js_sys::JSON::stringify(value).unwrap().as_string().unwrap()
}

#[wasm_bindgen_test]
async fn a_document_round_trips_through_indexeddb() {
    let name = unique_name("round-trip");
    let core = open(&name).await;
    let url = core
        .create(js_sys::JSON::parse(r#"{"items":[],"title":"groceries"}"#).unwrap())
        .unwrap();
    core.value(&url).unwrap(); // the page's copy: patches are relative to it
    let patches = core
        .change(
            &url,
            r#"[{"op":"insert","obj":["items"],"index":0,"values":["milk",{"n":2}]}]"#,
            Some("todo.added".into()),
        )
        .unwrap();
    assert!(
        patches.is_null(),
        "nothing but this change since value(): the page applies its own ops"
    );
    assert_eq!(
        json(&core.value(&url).unwrap()),
        r#"{"items":["milk",{"n":2}],"title":"groceries"}"#
    );
    core.flush().await.unwrap();
    core.close();
    drop(core);

    let reopened = open(&name).await;
    assert!(
        reopened.open_doc(&url).await.unwrap(),
        "the doc is known locally"
    );
    assert_eq!(
        json(&reopened.value(&url).unwrap()),
        r#"{"items":["milk",{"n":2}],"title":"groceries"}"#
    );
    let status = reopened.status().unwrap();
    assert_eq!(
        json(&status),
        r#"{"connection":"offline","pending":2,"lastSyncedAt":null,"buffered":0}"#
    );
}

#[wasm_bindgen_test]
async fn bad_input_is_a_typed_js_error_and_changes_nothing() {
    let core = open(&unique_name("errors")).await;
    let url = core.create(JsValue::UNDEFINED).unwrap();
    let code = |err: JsValue| {
        js_sys::Reflect::get(&err, &"code".into())
            .unwrap()
            .as_string()
            .unwrap()
    };
    assert_eq!(
        code(core.open_doc("not a url").await.unwrap_err()),
        "BadUrl"
    );
    assert_eq!(
        code(core.change(&url, r#"[{"op":"nope"}]"#, None).unwrap_err()),
        "BadOp"
    );
    assert_eq!(
        code(
            core.change(
                &url,
                r#"[{"op":"put","obj":["missing"],"key":"a","value":1}]"#,
                None
            )
            .unwrap_err()
        ),
        "BadOp"
    );
    assert_eq!(
        code(core.value("syncline:11111111111111111111111").unwrap_err()),
        "BadUrl"
    );
    assert_eq!(json(&core.value(&url).unwrap()), "{}");
}

fn code(err: &JsValue) -> String {
    js_sys::Reflect::get(err, &"code".into())
        .unwrap()
        .as_string()
        .unwrap_or_default()
}

/// Every raw (store, key, value) in the repo's IndexedDB database.
async fn raw_records(name: &str) -> Vec<(String, String, Vec<u8>)> {
    let db = raw_db(name).await;
    let stores = db.store_names();
    let tx = db
        .transaction(&stores, idb::TransactionMode::ReadOnly)
        .unwrap();
    let mut out = Vec::new();
    for store in &stores {
        let object_store = tx.object_store(store).unwrap();
        let keys = object_store
            .get_all_keys(None, None)
            .unwrap()
            .await
            .unwrap();
        let values = object_store.get_all(None, None).unwrap().await.unwrap();
        for (k, v) in keys.into_iter().zip(values) {
            let bytes = js_sys::Uint8Array::new(&v).to_vec();
            out.push((store.clone(), k.as_string().unwrap(), bytes));
        }
    }
    out
}

async fn raw_db(name: &str) -> idb::Database {
    idb::Database::builder(&format!("syncline:{name}"))
        .build()
        .await
        .unwrap()
}

#[wasm_bindgen_test]
async fn nothing_readable_reaches_indexeddb() {
    let name = unique_name("canary");
    let core = open(&name).await;
    let canary = "canary-d41d8cd98f00";
    let url = core
        .create(js_sys::JSON::parse(&format!(r#"{{"secret":"{canary}","items":[]}}"#)).unwrap())
        .unwrap();
    core.change(
        &url,
        &format!(r#"[{{"op":"insert","obj":["items"],"index":0,"values":["{canary}"]}}]"#),
        None,
    )
    .unwrap();
    core.flush().await.unwrap();
    core.close();
    let records = raw_records(&name).await;
    assert!(
        records.len() >= 4,
        "entries, doc record and key check are stored: {}",
        records.len()
    );
    for (store, key, value) in records {
        assert!(
            !value.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "{store}/{key} holds plaintext"
        );
    }
}

#[wasm_bindgen_test]
async fn a_wrong_key_fails_at_open_and_writes_nothing() {
    let name = unique_name("wrong-key");
    let core = open(&name).await;
    core.create(JsValue::UNDEFINED).unwrap();
    core.flush().await.unwrap();
    core.close();
    let before = raw_records(&name).await;
    let err = Core::open(name.clone(), None, no_events(), &[7; 32])
        .await
        .err()
        .unwrap();
    assert_eq!(code(&err), "WrongKey");
    assert_eq!(raw_records(&name).await, before, "nothing was written");
    let err = Core::open(name, None, no_events(), &[7; 5])
        .await
        .err()
        .unwrap();
    assert_eq!(code(&err), "BadKey");
}

#[wasm_bindgen_test]
async fn a_tampered_record_is_reported_and_the_rest_loads() {
    let name = unique_name("tamper");
    let core = open(&name).await;
    let kept = core
        .create(js_sys::JSON::parse(r#"{"v":"kept"}"#).unwrap())
        .unwrap();
    let hurt = core
        .create(js_sys::JSON::parse(r#"{"v":"hurt"}"#).unwrap())
        .unwrap();
    core.flush().await.unwrap();
    core.close();

    // Flip one byte of the log entry of the second document.
    let hurt_id = hurt
        .trim_start_matches("syncline:")
        .split('#')
        .next()
        .unwrap()
        .to_string();
    let (store, key, mut value) = raw_records(&name)
        .await
        .into_iter()
        .find(|(s, k, _)| s == "entries" && k.starts_with(&hurt_id))
        .unwrap();
    let last = value.len() - 1;
    value[last] ^= 1;
    let db = raw_db(&name).await;
    let tx = db
        .transaction(&[&store], idb::TransactionMode::ReadWrite)
        .unwrap();
    let bytes: JsValue = js_sys::Uint8Array::from(value.as_slice()).into();
    tx.object_store(&store)
        .unwrap()
        .put(&bytes, Some(&JsValue::from_str(&key)))
        .unwrap()
        .await
        .unwrap();
    tx.await.unwrap();
    db.close();

    let errors = std::rc::Rc::new(std::cell::RefCell::new(Vec::<JsValue>::new()));
    let sink = errors.clone();
    let on_event =
        wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            sink.borrow_mut().push(event);
        });
    let reopened = Core::open(name, None, on_event.as_ref().clone().into(), &KEY)
        .await
        .unwrap();
    let errors = errors.borrow();
    assert_eq!(errors.len(), 1, "exactly one problem reported");
    let error = js_sys::Reflect::get(&errors[0], &"error".into()).unwrap();
    assert_eq!(code(&error), "Corrupt");
    let message = js_sys::Reflect::get(&error, &"message".into())
        .unwrap()
        .as_string()
        .unwrap();
    assert!(message.contains(&format!("entries/{hurt_id}")), "{message}");
    reopened.open_doc(&kept).await.unwrap();
    assert_eq!(json(&reopened.value(&kept).unwrap()), r#"{"v":"kept"}"#);
    on_event.forget();
}
