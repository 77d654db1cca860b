//! `msenas devices`: lists adapters as JSON and names the pick (or why there is none).

use std::process::Command;

#[test]
fn devices_json_lists_adapters_and_the_pick() {
    let out = Command::new(env!("CARGO_BIN_EXE_msenas"))
        .args(["devices", "--json"])
        .output()
        .expect("run msenas");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let adapters = v["adapters"].as_array().expect("adapters");
    if adapters.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no adapter is listed"
        );
        assert!(v["error"].is_string());
        eprintln!("skip: no adapters");
        return;
    }
    for a in adapters {
        for k in [
            "name",
            "backend",
            "device_type",
            "max_storage_buffer_binding_size",
        ] {
            assert!(!a[k].is_null(), "{k} missing in {a}");
        }
    }
    // `auto` is a hardware GPU when one opens, else the CPU engine (never a CPU Vulkan driver).
    let engine = v["engine"].as_str().expect("auto always resolves");
    let hardware = adapters
        .iter()
        .any(|a| a["device_type"] != "Cpu" && a["compute"] == true);
    if !hardware {
        assert!(engine.starts_with("cpu ("), "{v}");
        assert!(v["picked"].is_null(), "{v}");
    }
    // Every listed adapter can be chosen by name.
    let name = adapters[0]["name"].as_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_msenas"))
        .args(["devices", "--json", "--device", name])
        .output()
        .expect("run msenas");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["picked"]["name"], adapters[0]["name"], "{v}");
    assert!(v["engine"].as_str().unwrap().starts_with("gpu: "), "{v}");
}

#[test]
fn devices_rejects_an_empty_choice_with_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_msenas"))
        .args(["devices", "--device", ""])
        .output()
        .expect("run msenas");
    assert_eq!(out.status.code(), Some(2));
}
