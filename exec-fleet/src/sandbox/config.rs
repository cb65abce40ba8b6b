//! How a sandbox runs: pool sizes, the engine, the OCI runtime.

use codebox_submission::{Language, Limits};

/// How the sandbox runs.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The limits every run is held to.
    pub limits: Limits,
    /// Warm containers kept per language (0: none; every run starts a container).
    pub pool_size: usize,
    /// The languages to keep warm containers for.
    pub pool_languages: Vec<Language>,
    /// The engine: `unix:///...` or `tcp://...`; `None` means `DOCKER_HOST` or the local socket.
    pub docker_host: Option<String>,
    /// Remove sandbox containers of fleet processes that are gone, at connect.
    pub remove_leftovers: bool,
    /// The OCI runtime the engine starts sandboxes with.
    pub runtime: RuntimeChoice,
}

/// Which of the engine's OCI runtimes starts sandbox containers.
///
/// Isolation is the same with either runtime Docker ships or crun: both get the same
/// namespaces, cgroup limits, capabilities, seccomp profile and mounts from the engine. What
/// differs is the cost of a start: the shim runs the runtime's binary four times per
/// container (create, start, delete, and delete again when containerd cleans up after it),
/// and runc is a Go binary, crun a C one: less CPU per run with crun, so more runs per second
/// (figures in docs/BENCHMARKS.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// crun if the engine offers a runtime by that name, else the engine's default.
    Auto,
    /// The engine's default runtime (runc in a stock engine).
    EngineDefault,
    /// This runtime; connecting fails if the engine does not offer it.
    Named(String),
}

impl RuntimeChoice {
    /// The runtime [`RuntimeChoice::Auto`] prefers.
    pub const PREFERRED: &'static str = "crun";

    /// The runtime name to create containers with (`None`: the engine's default), given the
    /// names the engine offers.
    pub fn resolve(&self, offered: &[String]) -> Result<Option<String>, UnknownRuntime> {
        match self {
            RuntimeChoice::Auto => Ok(offered
                .iter()
                .find(|name| *name == Self::PREFERRED)
                .cloned()),
            RuntimeChoice::EngineDefault => Ok(None),
            RuntimeChoice::Named(name) if offered.contains(name) => Ok(Some(name.clone())),
            RuntimeChoice::Named(name) => Err(UnknownRuntime {
                name: name.clone(),
                offered: offered.to_vec(),
            }),
        }
    }
}

/// The configured runtime is not one the engine offers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the engine has no runtime '{name}' (it has: {})", offered.join(", "))]
pub struct UnknownRuntime {
    /// The runtime asked for.
    pub name: String,
    /// The engine's runtimes.
    pub offered: Vec<String>,
}

impl std::str::FromStr for RuntimeChoice {
    type Err = std::convert::Infallible;

    /// `auto`, `default`, or a runtime's name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" | "auto" => RuntimeChoice::Auto,
            "default" => RuntimeChoice::EngineDefault,
            name => RuntimeChoice::Named(name.to_string()),
        })
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            limits: Limits::default(),
            pool_size: 2,
            pool_languages: Language::ALL.to_vec(),
            docker_host: None,
            remove_leftovers: true,
            runtime: RuntimeChoice::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RuntimeChoice;

    fn offered(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn auto_prefers_crun_and_falls_back_to_the_engine_default() {
        let auto = RuntimeChoice::Auto;
        assert_eq!(
            auto.resolve(&offered(&["runc", "crun", "io.containerd.runc.v2"])),
            Ok(Some("crun".to_string()))
        );
        assert_eq!(
            auto.resolve(&offered(&["runc", "io.containerd.runc.v2"])),
            Ok(None)
        );
        assert_eq!(auto.resolve(&[]), Ok(None));
    }

    #[test]
    fn a_named_runtime_must_be_offered() {
        let named: RuntimeChoice = "runsc".parse().unwrap();
        assert_eq!(named, RuntimeChoice::Named("runsc".into()));
        let err = named
            .resolve(&offered(&["runc", "crun"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'runsc'") && err.contains("runc, crun"),
            "{err}"
        );
        assert_eq!(
            named.resolve(&offered(&["runc", "runsc"])),
            Ok(Some("runsc".to_string()))
        );
    }

    #[test]
    fn parsing() {
        assert_eq!("auto".parse(), Ok(RuntimeChoice::Auto));
        assert_eq!("".parse(), Ok(RuntimeChoice::Auto));
        assert_eq!("default".parse(), Ok(RuntimeChoice::EngineDefault));
        assert_eq!(
            RuntimeChoice::EngineDefault.resolve(&offered(&["crun"])),
            Ok(None)
        );
    }
}
