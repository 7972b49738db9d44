//! Every option of a run's method, ModSync and diagnostics groups, with its default and help:
//! what `modsync methods` lists and what the CLI's `--X.y` flags set. Nothing here is written
//! by hand: it is read from the method registry ([`crate::methods::METHODS`]) and the option
//! specs beside each options struct, so it cannot drift from the code.
//!
//! Flags mirror the config paths, except that method options drop their `method_options.`
//! prefix: `--cagrad.c` sets `method_options.cagrad.c`, `--modsync.beta` sets `modsync.beta`.

use crate::config::TrainConfig;
use crate::error::ConfigError;
use crate::methods::{self, MethodOptions};
use crate::modsync::{DiagnosticsOptions, ModSyncOptions};
use crate::options::OptionSpec;

/// One option of a [`TrainConfig`].
#[derive(Clone)]
pub struct OptionInfo {
    /// The CLI flag without `--`, as `modsync methods` shows it (`cagrad.c`, `modsync.beta`).
    pub path: String,
    /// Its dotted path in the config, which errors name (`method_options.cagrad.c`).
    pub field: String,
    /// Its value in `TrainConfig::default()`.
    pub default: String,
    /// What a command line shows for the value (`F`, `N`, `BOOL`, `center|proj|avg`).
    pub value_name: String,
    pub help: &'static str,
    spec: Spec,
}

/// The spec behind an [`OptionInfo`], by the group it lives in.
#[derive(Clone, Copy)]
enum Spec {
    Method(&'static OptionSpec<MethodOptions>),
    ModSync(&'static OptionSpec<ModSyncOptions>),
    Diagnostics(&'static OptionSpec<DiagnosticsOptions>),
}

impl OptionInfo {
    /// Checks that `raw` reads as a value of this option's kind (its range is checked with the
    /// whole config, by `TrainConfig::validate`).
    pub fn parse(&self, raw: &str) -> Result<(), String> {
        match self.spec {
            Spec::Method(s) => s.parse(raw).map(drop),
            Spec::ModSync(s) => s.parse(raw).map(drop),
            Spec::Diagnostics(s) => s.parse(raw).map(drop),
        }
    }

    /// Sets this option in `config` from its text `raw`; the error names the field.
    pub fn set(&self, config: &mut TrainConfig, raw: &str) -> Result<(), ConfigError> {
        match self.spec {
            Spec::Method(s) => s.set(&mut config.method_options, raw),
            Spec::ModSync(s) => s.set(&mut config.modsync, raw),
            Spec::Diagnostics(s) => s.set(&mut config.diagnostics, raw),
        }
        .map_err(|problem| ConfigError::new(self.field.clone(), problem))
    }
}

/// The [`OptionInfo`] of `spec`, whose group sits at `field_prefix` in the config and whose
/// flag starts with `flag_prefix`; `defaults` is the group's default value.
fn info<G>(
    spec: &'static OptionSpec<G>,
    defaults: &G,
    flag_prefix: &str,
    field_prefix: &str,
    wrap: fn(&'static OptionSpec<G>) -> Spec,
) -> OptionInfo {
    OptionInfo {
        path: format!("{flag_prefix}{}", spec.path),
        field: format!("{field_prefix}.{}", spec.path),
        default: spec.get(defaults).to_string(),
        value_name: spec.value_name(),
        help: spec.help,
        spec: wrap(spec),
    }
}

fn method_option(spec: &'static OptionSpec<MethodOptions>) -> OptionInfo {
    info(
        spec,
        &MethodOptions::default(),
        "",
        "method_options",
        Spec::Method,
    )
}

fn modsync_options() -> Vec<OptionInfo> {
    let defaults = ModSyncOptions::default();
    ModSyncOptions::OPTIONS
        .iter()
        .map(|s| info(s, &defaults, "modsync.", "modsync", Spec::ModSync))
        .collect()
}

fn diagnostics_options() -> Vec<OptionInfo> {
    let defaults = DiagnosticsOptions::default();
    DiagnosticsOptions::OPTIONS
        .iter()
        .map(|s| {
            info(
                s,
                &defaults,
                "diagnostics.",
                "diagnostics",
                Spec::Diagnostics,
            )
        })
        .collect()
}

/// One method key or option group, as `modsync methods` lists it.
#[derive(Clone)]
pub struct MethodInfo {
    pub key: &'static str,
    pub summary: &'static str,
    pub options: Vec<OptionInfo>,
}

/// Every method of the registry with the options it reads, then the ModSync wrapper and the
/// diagnostics.
pub fn catalogue() -> Vec<MethodInfo> {
    let methods = methods::METHODS.iter().map(|m| MethodInfo {
        key: m.name,
        summary: m.summary,
        options: m
            .options
            .iter()
            .chain(m.uses_eps.then_some(&methods::EPS))
            .map(method_option)
            .collect(),
    });
    methods
        .chain([
            MethodInfo {
                key: "modsync+X",
                summary: ModSyncOptions::SUMMARY,
                options: modsync_options(),
            },
            MethodInfo {
                key: "diagnostics",
                summary: DiagnosticsOptions::SUMMARY,
                options: diagnostics_options(),
            },
        ])
        .collect()
}

/// Every option once, in config order: the method options (`eps` first), ModSync's, the
/// diagnostics'. The CLI declares one flag for each.
pub fn options() -> Vec<OptionInfo> {
    MethodOptions::specs()
        .map(method_option)
        .chain(modsync_options())
        .chain(diagnostics_options())
        .collect()
}

/// Sets the option whose flag is `path` (`cagrad.c`) in `config` from its text `raw`.
pub fn set_option(config: &mut TrainConfig, path: &str, raw: &str) -> Result<(), ConfigError> {
    match options().into_iter().find(|o| o.path == path) {
        Some(o) => o.set(config, raw),
        None => Err(ConfigError::new(path, "no such option")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::methods::{METHODS, MethodOptions, NAMES};

    /// The value at the dotted `field` of a JSON object.
    fn at<'a>(json: &'a mut Value, field: &str) -> &'a mut Value {
        field.split('.').fold(json, |v, key| &mut v[key])
    }

    /// A value of `o`'s kind other than its default.
    fn other_value(o: &OptionInfo) -> String {
        match o.value_name.as_str() {
            "F" => (o.default.parse::<f64>().unwrap() * 2.0 + 1.0).to_string(),
            "N" => (o.default.parse::<u64>().unwrap() + 1).to_string(),
            "BOOL" => (!o.default.parse::<bool>().unwrap()).to_string(),
            names => names
                .split('|')
                .find(|n| *n != o.default)
                .unwrap()
                .to_string(),
        }
    }

    /// The text `modsync methods` would show for a JSON value.
    fn shown(v: &Value) -> String {
        match v {
            Value::Number(n) if n.is_f64() => n.as_f64().unwrap().to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    #[test]
    fn every_option_reads_and_sets_exactly_the_field_it_names() {
        let mut defaults = serde_json::to_value(TrainConfig::default()).unwrap();
        for o in options() {
            assert_eq!(shown(at(&mut defaults, &o.field)), o.default, "{}", o.path);
            let raw = other_value(&o);
            assert!(
                o.parse(&raw).is_ok() && o.parse("not a value").is_err(),
                "{}",
                o.path
            );
            let mut config = TrainConfig::default();
            set_option(&mut config, &o.path, &raw).unwrap();
            let mut after = serde_json::to_value(&config).unwrap();
            assert_eq!(shown(at(&mut after, &o.field)), raw, "{}", o.path);
            // Nothing else changed.
            *at(&mut after, &o.field) = at(&mut defaults, &o.field).clone();
            assert_eq!(after, defaults, "{}", o.path);
        }
        assert!(set_option(&mut TrainConfig::default(), "cagrad.nope", "1").is_err());
    }

    #[test]
    fn each_method_owns_the_options_field_named_after_it() {
        let defaults = serde_json::to_value(MethodOptions::default()).unwrap();
        let mut groups: Vec<&str> = defaults
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec!["eps"];
        expected.extend(
            METHODS
                .iter()
                .filter(|m| !m.options.is_empty())
                .map(|m| m.name),
        );
        groups.sort();
        expected.sort();
        assert_eq!(groups, expected);
        for m in METHODS {
            for o in m.options {
                assert_eq!(o.path.split('.').next(), Some(m.name), "{}", o.path);
            }
        }
        let listed: Vec<&str> = catalogue().iter().map(|m| m.key).collect();
        assert_eq!(listed[..METHODS.len()], NAMES[..]);
        let mut paths: Vec<String> = options().into_iter().map(|o| o.path).collect();
        let n = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), n, "an option is listed twice");
    }
}
