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

fn json(value: &JsValue) -> String {
    js_sys::JSON::stringify(value).unwrap().as_string().unwrap()
}

fn ops(source: &str) -> JsValue {
    js_sys::JSON::parse(source).unwrap()
}

#[wasm_bindgen_test]
async fn a_document_round_trips_through_indexeddb() {
    let name = unique_name("round-trip");
    let core = Core::open(name.clone(), None, no_events()).await.unwrap();
    let url = core
        .create(js_sys::JSON::parse(r#"{"items":[],"title":"groceries"}"#).unwrap())
        .unwrap();
    let value = core
        .change(
            &url,
            ops(r#"[{"op":"insert","obj":["items"],"index":0,"values":["milk",{"n":2}]}]"#),
            Some("todo.added".into()),
        )
        .unwrap();
    assert_eq!(
        json(&value),
        r#"{"items":["milk",{"n":2}],"title":"groceries"}"#
    );
    core.flush().await.unwrap();
    core.close();
    drop(core);

    let reopened = Core::open(name, None, no_events()).await.unwrap();
    assert!(reopened.open_doc(&url).unwrap(), "the doc is known locally");
    assert_eq!(
        json(&reopened.value(&url).unwrap()),
        r#"{"items":["milk",{"n":2}],"title":"groceries"}"#
    );
    let status = reopened.status().unwrap();
    assert_eq!(
        json(&status),
        r#"{"connection":"offline","pending":2,"lastSyncedAt":null}"#
    );
}

#[wasm_bindgen_test]
async fn bad_input_is_a_typed_js_error_and_changes_nothing() {
    let core = Core::open(unique_name("errors"), None, no_events())
        .await
        .unwrap();
    let url = core.create(JsValue::UNDEFINED).unwrap();
    let code = |err: JsValue| {
        js_sys::Reflect::get(&err, &"code".into())
            .unwrap()
            .as_string()
            .unwrap()
    };
    assert_eq!(code(core.open_doc("not a url").unwrap_err()), "BadUrl");
    assert_eq!(
        code(
            core.change(&url, ops(r#"[{"op":"nope"}]"#), None)
                .unwrap_err()
        ),
        "BadOp"
    );
    assert_eq!(
        code(
            core.change(
                &url,
                ops(r#"[{"op":"put","obj":["missing"],"key":"a","value":1}]"#),
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
