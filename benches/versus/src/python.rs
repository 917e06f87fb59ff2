//! Python Scraipe 0.1.73 as a rival, in a virtualenv under `target/` (installed from PyPI on
//! first use). Every row that needs it says "skipped" with the reason when it is unavailable.

use std::path::PathBuf;
use std::process::Command;

use crate::stats::Latencies;
use crate::Settings;

pub struct Python {
    /// The venv's python, when scraipe imports.
    exe: Result<PathBuf, String>,
}

const BRIDGE: &str = r#"
import json, resource, sys, time
from scraipe.async_util import AsyncManager
n = int(sys.argv[1])
ex = AsyncManager.get_executor()
async def trivial():
    return 1
for _ in range(n // 10):
    ex.run(trivial())
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
s = []
c = cpu()
for _ in range(n):
    t = time.perf_counter_ns()
    ex.run(trivial())
    s.append((time.perf_counter_ns() - t) / 1000)
print(json.dumps({"samples": s, "cpu_us": (cpu() - c) * 1e6 / n}))
"#;

impl Python {
    /// A stand-in when no group needs Python.
    pub fn setup_skipped() -> Python {
        Python {
            exe: Err("not requested".into()),
        }
    }

    pub fn setup(target_dir: &std::path::Path) -> Python {
        Python {
            exe: Self::try_setup(target_dir),
        }
    }

    fn try_setup(target_dir: &std::path::Path) -> Result<PathBuf, String> {
        if !crate::have("python3") {
            return Err("python3 not installed".into());
        }
        let venv = target_dir.join("versus-venv");
        let py = venv.join("bin/python");
        let imports = |py: &PathBuf| {
            Command::new(py)
                .args(["-c", "import scraipe, importlib.metadata as m; assert m.version('scraipe') == '0.1.73'"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if py.exists() && imports(&py) {
            return Ok(py);
        }
        eprintln!(
            "  setting up Python Scraipe 0.1.73 in {} (first run only)...",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("could not create a Python virtualenv".into());
        }
        let out = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "scraipe==0.1.73",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "pip install scraipe==0.1.73 failed: {}",
                err.lines().last().unwrap_or("")
            ));
        }
        if imports(&py) {
            Ok(py)
        } else {
            Err("scraipe 0.1.73 installed but does not import".into())
        }
    }

    /// Versions of Python, Python Scraipe and aiohttp in the venv (empty when unavailable).
    pub fn versions(&self) -> Vec<(&'static str, String)> {
        let Ok(py) = self.exe() else {
            return Vec::new();
        };
        let out = Command::new(py)
            .args([
                "-c",
                "import platform, importlib.metadata as m; print(platform.python_version(), m.version('scraipe'), m.version('aiohttp'))",
            ])
            .output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        let v: Vec<&str> = text.split_whitespace().collect();
        match v.as_slice() {
            [python, scraipe, aiohttp] => vec![
                ("python", python.to_string()),
                ("scraipe (Python)", scraipe.to_string()),
                ("aiohttp", aiohttp.to_string()),
            ],
            _ => Vec::new(),
        }
    }

    pub fn exe(&self) -> Result<&PathBuf, String> {
        self.exe.as_ref().map_err(|e| e.clone())
    }

    /// Latencies (µs) and CPU per call of `AsyncManager.get_executor().run(trivial())`.
    pub fn bridge(&self, settings: &Settings) -> Result<Latencies, String> {
        let py = self.exe()?;
        let n = if settings.quick { "5000" } else { "20000" };
        let mut lat = Latencies::default();
        for _ in 0..settings.runs {
            let out = Command::new(py)
                .args(["-c", BRIDGE, n])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "python bridge failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
            let samples: Vec<f64> = v["samples"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default();
            lat.add_run(samples, v["cpu_us"].as_f64().unwrap_or(f64::NAN));
        }
        Ok(lat)
    }
}
