//! `msenas devices`: every adapter wgpu finds, with its backend, type, the limits the engine
//! cares about and its optional features, and the one a device choice picks.

use crate::engine::{list_adapters, AdapterSummary, Device};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show what this choice resolves to: auto (a hardware GPU, else the CPU engine), gpu, cpu
    /// (the CPU engine) or part of an adapter's name.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

fn describe(a: &AdapterSummary) -> String {
    format!("{} ({}, {})", a.name, a.backend, a.device_type)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let picked = match Device::resolve(&a.device) {
        // The same one-line refusal every command gives.
        Err(e) if a.device.is_empty() => return Err(e.into()),
        picked => picked,
    };
    let adapters = list_adapters();
    if a.json {
        let v = serde_json::json!({
            "backend_env": std::env::var("WGPU_BACKEND").ok(),
            "adapters": adapters,
            "device": a.device,
            "engine": picked.as_ref().ok().map(|d| d.describe()),
            "picked": picked.as_ref().ok().and_then(|d| d.adapter()),
            "error": picked.as_ref().err().map(|e| e.to_string()),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if adapters.is_empty() {
        println!(
            "no adapters found (WGPU_BACKEND = {:?})",
            std::env::var("WGPU_BACKEND").ok()
        );
    }
    for (i, s) in adapters.iter().enumerate() {
        println!("{i}: {}", describe(s));
        if !s.driver.is_empty() {
            println!("   driver: {}", s.driver);
        }
        println!(
            "   compute: {}; storage buffers per stage {}; binding {}; buffer {}; workgroup \
             memory {}; invocations {}; workgroups per dimension {}",
            if s.compute { "yes" } else { "no" },
            s.max_storage_buffers_per_shader_stage,
            mib(s.max_storage_buffer_binding_size),
            mib(s.max_buffer_size),
            mib(s.max_compute_workgroup_storage_size as u64),
            s.max_compute_invocations_per_workgroup,
            s.max_compute_workgroups_per_dimension
        );
        let f = if s.features.is_empty() {
            "none".to_string()
        } else {
            s.features.join(", ")
        };
        println!("   features: {f}");
    }
    match picked {
        Ok(d) => match d.adapter() {
            Some(p) => println!("--device {} picks: {}", a.device, describe(&p)),
            None => println!(
                "--device {} picks: the CPU engine, {}",
                a.device,
                d.describe()
            ),
        },
        Err(e) => println!("{e}"),
    }
    Ok(())
}
