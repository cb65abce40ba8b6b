//! Latency of a Python `print(1)` through the sandbox, with and without the warm pool.
//!
//!   cargo run -p codebox-exec-fleet --example sandbox_latency [RUNS]
//!
//! Runs are sequential; with the pool, each run waits until the pool has refilled, so it
//! measures a warm run rather than a refill race.

use std::time::{Duration, Instant};

use codebox_exec_fleet::sandbox::{Sandbox, SandboxConfig};
use codebox_submission::project::ProjectFile;
use codebox_submission::{Language, Status};

/// Wall times to result, and the runs' own `time_ms` (the program's part), both sorted.
async fn measure(pool_size: usize, runs: usize) -> (Vec<Duration>, Vec<Duration>) {
    let sandbox = Sandbox::connect(SandboxConfig {
        pool_size,
        pool_languages: vec![Language::Python],
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox (scripts/docker.sh, scripts/images.sh)");
    let program_files = [ProjectFile {
        name: "main.py".into(),
        content: "print(1)\n".into(),
    }];
    let mut times = Vec::with_capacity(runs);
    let mut program = Vec::with_capacity(runs);
    for i in 0..runs + 2 {
        if pool_size > 0 {
            while sandbox
                .warm_counts()
                .get(&Language::Python)
                .copied()
                .unwrap_or_default()
                < pool_size
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            // Let the previous container's removal finish first, as the pool case does.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let start = Instant::now();
        let result = sandbox.run(Language::Python, &program_files, "").await;
        let elapsed = start.elapsed();
        assert_eq!(result.status, Status::Ok, "{result:?}");
        if i >= 2 {
            // The first two warm up caches.
            times.push(elapsed);
            program.push(Duration::from_millis(result.time_ms.unwrap_or_default()));
        }
    }
    sandbox.shutdown().await;
    times.sort();
    program.sort();
    (times, program)
}

fn report(name: &str, times: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "{name:<22} n={:<3} min {:6.1} ms  p50 {:6.1} ms  p90 {:6.1} ms  max {:6.1} ms",
        times.len(),
        ms(times[0]),
        ms(pct(0.5)),
        ms(pct(0.9)),
        ms(times[times.len() - 1])
    );
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let (cold, cold_program) = measure(0, runs).await;
    let (warm, warm_program) = measure(1, runs).await;
    report("fresh container", &cold);
    report("  of which time_ms", &cold_program);
    report("warm pool", &warm);
    report("  of which time_ms", &warm_program);
    let start = Instant::now();
    let status = std::process::Command::new("python3")
        .args(["-c", "print(1)"])
        .output()
        .expect("python3");
    assert!(status.status.success());
    println!(
        "{:<22} {:6.1} ms",
        "python3 on the host",
        start.elapsed().as_secs_f64() * 1000.0
    );
}
