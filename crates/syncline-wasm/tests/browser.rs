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
    Core::open(name.to_string(), JsValue::UNDEFINED, no_events(), &KEY)
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
            None,
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
        r#"{"connection":"offline","unsaved":0,"pending":2,"lastSyncedAt":null,"buffered":0}"#
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
        code(
            core.change(&url, r#"[{"op":"nope"}]"#, None, None)
                .unwrap_err()
        ),
        "BadOp"
    );
    assert_eq!(
        code(
            core.change(
                &url,
                r#"[{"op":"put","obj":["missing"],"key":"a","value":1}]"#,
                None,
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
    let err = Core::open(name.clone(), JsValue::UNDEFINED, no_events(), &[7; 32])
        .await
        .err()
        .unwrap();
    assert_eq!(code(&err), "WrongKey");
    assert_eq!(raw_records(&name).await, before, "nothing was written");
    let err = Core::open(name, JsValue::UNDEFINED, no_events(), &[7; 5])
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
    let reopened = Core::open(
        name,
        JsValue::UNDEFINED,
        on_event.as_ref().clone().into(),
        &KEY,
    )
    .await
    .unwrap();
    let errors = errors.borrow().clone();
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

// ------------------------------------------------------------ fast open

fn doc_id(url: &str) -> String {
    url.trim_start_matches("syncline:")
        .split('#')
        .next()
        .unwrap()
        .to_string()
}

/// Replaces (or with `None` deletes) one raw record.
async fn put_raw(name: &str, store: &str, key: &str, value: Option<Vec<u8>>) {
    let db = raw_db(name).await;
    let tx = db
        .transaction(&[store], idb::TransactionMode::ReadWrite)
        .unwrap();
    let object_store = tx.object_store(store).unwrap();
    match value {
        Some(value) => {
            let bytes: JsValue = js_sys::Uint8Array::from(value.as_slice()).into();
            object_store
                .put(&bytes, Some(&JsValue::from_str(key)))
                .unwrap()
                .await
                .unwrap();
        }
        None => object_store
            .delete(JsValue::from_str(key))
            .unwrap()
            .await
            .unwrap(),
    }
    tx.await.unwrap();
    db.close();
}

fn raw_value(records: &[(String, String, Vec<u8>)], store: &str, key: &str) -> Vec<u8> {
    records
        .iter()
        .find(|(s, k, _)| s == store && k == key)
        .unwrap_or_else(|| panic!("no {store}/{key}"))
        .2
        .clone()
}

type Events = std::rc::Rc<std::cell::RefCell<Vec<JsValue>>>;

/// Opens the repo, collecting its events (problems found while reading the
/// log are sent during `open`, synchronously).
async fn open_collecting(name: &str) -> (Core, Events) {
    let events: Events = Default::default();
    let sink = events.clone();
    let on_event =
        wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            sink.borrow_mut().push(event);
        });
    let core = Core::open(
        name.to_string(),
        JsValue::UNDEFINED,
        on_event.into_js_value().into(),
        &KEY,
    )
    .await
    .unwrap();
    (core, events)
}

fn error_codes(events: &Events) -> Vec<String> {
    events
        .borrow()
        .iter()
        .filter(|e| js_sys::Reflect::get(e, &"type".into()).unwrap() == "error")
        .map(|e| code(&js_sys::Reflect::get(e, &"error".into()).unwrap()))
        .collect()
}

/// A document with a map, a list, a text and a counter, made in one burst
/// big enough (> 1,024 operations) to be compacted at once: its log then
/// has nothing newer than its snapshot. Returns its URL and value (JSON).
async fn compacted_doc(name: &str) -> (String, String) {
    let core = open(name).await;
    let url = core
        .create(js_sys::JSON::parse(r#"{"title":"notes","items":[]}"#).unwrap())
        .unwrap();
    let long = "x".repeat(1_100);
    core.change(
        &url,
        &format!(
            r#"[{{"op":"put_text","obj":[],"key":"body","value":"hé🌍"}},
                {{"op":"splice_text","obj":["body"],"index":4,"insert":"{long}"}},
                {{"op":"put_counter","obj":[],"key":"likes","value":40}},
                {{"op":"increment","obj":[],"key":"likes","by":2}},
                {{"op":"insert","obj":["items"],"index":0,"values":[{{"n":1.5,"done":false}},null,"y"]}}]"#
        ),
        None, None,
    )
    .unwrap();
    core.flush().await.unwrap();
    let value = json(&core.value(&url).unwrap());
    core.close();
    let records = raw_records(name).await;
    assert!(
        records
            .iter()
            .any(|(s, k, _)| s == "values" && *k == doc_id(&url)),
        "compaction stored the value"
    );
    (url, value)
}

#[wasm_bindgen_test]
async fn a_compacted_document_shows_its_value_before_its_crdt_loads() {
    let name = unique_name("fast-open");
    let (url, value) = compacted_doc(&name).await;
    assert!(value.contains(r#""likes":42"#) && value.contains("hé🌍x"));

    let (core, events) = open_collecting(&name).await;
    assert!(
        core.open_doc(&url).await.unwrap(),
        "the doc is known locally"
    );
    let shown = core.value(&url).unwrap();
    assert!(
        !core.crdt_loaded(&url).unwrap(),
        "the value came without loading the CRDT"
    );
    assert_eq!(json(&shown), value, "exactly the value a full load gives");
    assert_eq!(
        js_sys::Reflect::get(&core.status().unwrap(), &"pending".into()).unwrap(),
        2,
        "its outbox (two entries, still sealed) is counted"
    );

    // A change before the load: loads the CRDT, applies on top, in order.
    let patches = core
        .change(
            &url,
            r#"[{"op":"put","obj":[],"key":"late","value":1},{"op":"increment","obj":[],"key":"likes","by":1}]"#,
            None, None,
        )
        .unwrap();
    assert!(core.crdt_loaded(&url).unwrap());
    assert_eq!(core.deferred_loads().unwrap(), 1);
    assert!(
        patches.is_null(),
        "nothing but this change since the value shown: the page applies its own ops"
    );
    let after = json(&core.value(&url).unwrap());
    assert!(after.contains(r#""late":1"#) && after.contains(r#""likes":43"#));
    core.flush().await.unwrap();
    core.close();
    assert!(
        error_codes(&events).is_empty(),
        "{:?}",
        error_codes(&events)
    );
    drop(core);

    let again = open(&name).await;
    again.open_doc(&url).await.unwrap();
    assert_eq!(
        json(&again.value(&url).unwrap()),
        after,
        "the change made before the load survived the reload"
    );
}

#[wasm_bindgen_test]
async fn a_deferred_document_loads_in_the_background() {
    let name = unique_name("fast-open-bg");
    let (url, value) = compacted_doc(&name).await;
    // Each event resolves the promise the test waits on (the load ends
    // with a status event: its outbox is now counted exactly).
    type Slot = std::rc::Rc<std::cell::RefCell<Option<js_sys::Function>>>;
    let slot: Slot = Default::default();
    let wake = slot.clone();
    let on_event = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
        if let Some(resolve) = wake.borrow_mut().take() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let core = Core::open(
        name,
        JsValue::UNDEFINED,
        on_event.into_js_value().into(),
        &KEY,
    )
    .await
    .unwrap();
    assert!(!core.crdt_loaded(&url).unwrap(), "deferred, not opened");
    // No one opens it: it still loads (its outbox must be pushed).
    while !core.crdt_loaded(&url).unwrap() {
        let next = js_sys::Promise::new(&mut |resolve, _| *slot.borrow_mut() = Some(resolve));
        wasm_bindgen_futures::JsFuture::from(next).await.unwrap();
    }
    assert_eq!(core.deferred_loads().unwrap(), 1);
    assert_eq!(json(&core.value(&url).unwrap()), value);
}

#[wasm_bindgen_test]
async fn a_tail_or_a_missing_value_means_a_full_load_without_error() {
    // A change newer than the snapshot: a tail.
    let name = unique_name("fast-open-tail");
    let (url, _) = compacted_doc(&name).await;
    let core = open(&name).await;
    core.open_doc(&url).await.unwrap();
    core.change(
        &url,
        r#"[{"op":"put","obj":[],"key":"late","value":1}]"#,
        None,
        None,
    )
    .unwrap();
    let expected = json(&core.value(&url).unwrap());
    core.flush().await.unwrap();
    core.close();
    drop(core);
    let (core, events) = open_collecting(&name).await;
    assert!(core.crdt_loaded(&url).unwrap(), "a tail: loaded at open");
    core.open_doc(&url).await.unwrap();
    assert_eq!(json(&core.value(&url).unwrap()), expected);
    assert!(error_codes(&events).is_empty());
    core.close();

    // A snapshot written before values existed: no value record.
    let name = unique_name("fast-open-old");
    let (url, value) = compacted_doc(&name).await;
    put_raw(&name, "values", &doc_id(&url), None).await;
    let (core, events) = open_collecting(&name).await;
    assert!(core.crdt_loaded(&url).unwrap(), "no value: loaded at open");
    core.open_doc(&url).await.unwrap();
    assert_eq!(json(&core.value(&url).unwrap()), value);
    assert!(
        error_codes(&events).is_empty(),
        "the old format is no error"
    );
}

#[wasm_bindgen_test]
async fn a_tampered_or_foreign_value_is_reported_and_the_document_loads_fully() {
    // One byte flipped in the sealed value.
    let name = unique_name("fast-open-tamper");
    let (url, value) = compacted_doc(&name).await;
    let mut sealed = raw_value(&raw_records(&name).await, "values", &doc_id(&url));
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    put_raw(&name, "values", &doc_id(&url), Some(sealed)).await;
    let (core, events) = open_collecting(&name).await;
    assert_eq!(error_codes(&events), ["Corrupt"]);
    assert!(core.crdt_loaded(&url).unwrap(), "loaded the normal way");
    core.open_doc(&url).await.unwrap();
    assert_eq!(json(&core.value(&url).unwrap()), value);
    core.close();

    // Another document's (valid) value record put under this one's key.
    let name = unique_name("fast-open-swap");
    let (url, value) = compacted_doc(&name).await;
    let core = open(&name).await;
    let other = core
        .create(js_sys::JSON::parse(r#"{"evil":true}"#).unwrap())
        .unwrap();
    core.change(
        &other,
        &format!(
            r#"[{{"op":"put_text","obj":[],"key":"t","value":"{}"}}]"#,
            "z".repeat(1_100)
        ),
        None,
        None,
    )
    .unwrap();
    core.flush().await.unwrap();
    core.close();
    drop(core);
    let records = raw_records(&name).await;
    let foreign = raw_value(&records, "values", &doc_id(&other));
    put_raw(&name, "values", &doc_id(&url), Some(foreign)).await;
    let (core, events) = open_collecting(&name).await;
    assert_eq!(error_codes(&events), ["Corrupt"]);
    assert!(core.crdt_loaded(&url).unwrap());
    core.open_doc(&url).await.unwrap();
    assert_eq!(json(&core.value(&url).unwrap()), value);
}

/// The `message` of every entry of `core.history(url)`.
fn history_messages(core: &Core, url: &str) -> Vec<Option<String>> {
    let history: js_sys::Array = core.history(url).unwrap().into();
    history
        .iter()
        .map(|e| {
            js_sys::Reflect::get(&e, &"message".into())
                .unwrap()
                .as_string()
        })
        .collect()
}

#[wasm_bindgen_test]
async fn changes_made_in_one_task_keep_their_own_messages() {
    let name = unique_name("messages");
    let core = open(&name).await;
    let url = core
        .create(js_sys::JSON::parse(r#"{"items":[]}"#).unwrap())
        .unwrap();
    core.value(&url).unwrap();
    for (item, message) in [("a", Some("one")), ("b", None), ("c", Some("three"))] {
        let op = format!(r#"[{{"op":"insert","obj":["items"],"index":0,"values":["{item}"]}}]"#);
        core.change(&url, &op, message.map(Into::into), None)
            .unwrap();
    }
    let expected = [None, Some("one".into()), None, Some("three".into())];
    assert_eq!(history_messages(&core, &url), expected);
    core.flush().await.unwrap();
    core.close();
    drop(core);
    let reopened = open(&name).await;
    reopened.open_doc(&url).await.unwrap();
    assert_eq!(
        history_messages(&reopened, &url),
        expected,
        "after a reload"
    );
}

/// Yields to the event loop until `events` holds one of type `kind`
/// (events come from a fresh task); returns it.
async fn next_event(events: &Events, kind: &str) -> JsValue {
    loop {
        let found = events
            .borrow()
            .iter()
            .find(|e| js_sys::Reflect::get(e, &"type".into()).unwrap() == kind)
            .cloned();
        if let Some(event) = found {
            return event;
        }
        gloo_timers::future::TimeoutFuture::new(0).await;
    }
}

#[wasm_bindgen_test]
async fn heads_are_those_of_the_value_the_page_holds() {
    // Two tabs of one repo: a change made in one reaches the other.
    let name = unique_name("heads");
    let (a, a_events) = open_collecting(&name).await;
    a.set_tab_sync(true).unwrap();
    let url = a
        .create(js_sys::JSON::parse(r#"{"items":[]}"#).unwrap())
        .unwrap();
    a.value(&url).unwrap();
    a.flush().await.unwrap();
    let (b, b_events) = open_collecting(&name).await;
    b.open_doc(&url).await.unwrap();
    let shown = json(&b.value(&url).unwrap());
    let before = b.heads(&url).unwrap();
    assert_eq!(json(&b.value_at(&url, before.clone()).unwrap()), shown);

    a_events.borrow_mut().clear(); // the creation's broadcast: B has it
    a.change(
        &url,
        r#"[{"op":"insert","obj":["items"],"index":0,"values":["from a"]}]"#,
        None,
        None,
    )
    .unwrap();
    assert_eq!(a.heads(&url).unwrap().len(), 1);
    assert_ne!(
        a.heads(&url).unwrap(),
        before,
        "a local change is shown at once"
    );
    let broadcast = next_event(&a_events, "broadcast").await;
    let bytes: js_sys::Uint8Array = js_sys::Reflect::get(&broadcast, &"bytes".into())
        .unwrap()
        .into();
    b.received_from_tab(&bytes.to_vec()).unwrap();
    // B's engine has the change, but the page has not been given it yet.
    assert_eq!(b.heads(&url).unwrap(), before, "not shown yet");
    next_event(&b_events, "changed").await;
    let after = b.heads(&url).unwrap();
    assert_eq!(after, a.heads(&url).unwrap(), "shown with its patches");
    assert_eq!(
        json(&b.value_at(&url, after).unwrap()),
        r#"{"items":["from a"]}"#
    );
}

#[wasm_bindgen_test]
async fn a_document_shown_from_its_stored_value_has_that_values_heads() {
    let name = unique_name("fast-open-heads");
    let (url, value) = compacted_doc(&name).await;
    let core = open(&name).await;
    core.open_doc(&url).await.unwrap();
    assert_eq!(json(&core.value(&url).unwrap()), value);
    assert!(!core.crdt_loaded(&url).unwrap());
    let heads = core.heads(&url).unwrap();
    assert!(!heads.is_empty());
    assert_eq!(json(&core.value_at(&url, heads).unwrap()), value);
}

#[wasm_bindgen_test]
async fn a_shown_document_keeps_the_heads_it_loaded_with_after_another_tabs_change() {
    // Worker mode applies a tab's changes made against a stored value at
    // these heads, whatever loaded the CRDT (here, possibly, another tab's
    // message, applied in the same call).
    let name = unique_name("fast-open-loaded-heads");
    let (url, value) = compacted_doc(&name).await;
    let (a, a_events) = open_collecting(&name).await;
    a.set_tab_sync(true).unwrap();
    a.open_doc(&url).await.unwrap();
    let (b, b_events) = open_collecting(&name).await;
    b.open_doc(&url).await.unwrap();
    assert_eq!(json(&b.value(&url).unwrap()), value, "shown from storage");
    assert_eq!(b.loaded_heads(&url).unwrap(), None, "not loaded yet");

    a_events.borrow_mut().clear();
    a.change(
        &url,
        r#"[{"op":"put","obj":[],"key":"title","value":"renamed"}]"#,
        None,
        None,
    )
    .unwrap();
    let broadcast = next_event(&a_events, "broadcast").await;
    let bytes: js_sys::Uint8Array = js_sys::Reflect::get(&broadcast, &"bytes".into())
        .unwrap()
        .into();
    b.received_from_tab(&bytes.to_vec()).unwrap();
    assert!(b.crdt_loaded(&url).unwrap());
    next_event(&b_events, "changed").await;
    let now = b.heads(&url).unwrap();
    assert_eq!(now, a.heads(&url).unwrap(), "B has A's change");
    let loaded = b.loaded_heads(&url).unwrap().expect("kept once loaded");
    assert_ne!(loaded, now);
    assert_eq!(
        json(&b.value_at(&url, loaded).unwrap()),
        value,
        "the heads of the value B showed, not of the value after A's change"
    );
}
