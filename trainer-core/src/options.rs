//! How an option group describes its options, so that validation, the `modsync methods`
//! listing and the CLI's `--X.y` flags all come from one line per option.
//!
//! A group is a serde struct (`CagradOptions`, `ModSyncOptions`, …) reached from a config
//! struct `G`; each of its options is an [`OptionSpec<G>`]: its path in `G`, its kind, the
//! range it must lie in, a one-line help and how to read and write it. The specs sit beside the
//! struct they describe (a method's options in the method's own file).

use std::fmt;
use std::num::{ParseFloatError, ParseIntError};
use std::str::ParseBoolError;

use crate::error::ConfigError;

/// A value an option holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Float(f64),
    Count(u64),
    Flag(bool),
    /// One of a fixed set of names (an enum).
    Choice(&'static str),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(v) => v.fmt(f),
            Value::Count(v) => v.fmt(f),
            Value::Flag(v) => v.fmt(f),
            Value::Choice(v) => v.fmt(f),
        }
    }
}

/// The range an option's value must lie in; the words of each are the ones
/// [`ConfigError::problem`] carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Check {
    /// Any value of its kind.
    Any,
    /// A finite number > 0.
    Positive,
    /// A finite number ≥ 0.
    NonNegative,
    /// In [0, 1): a decay rate or a fraction below one.
    Decay,
    /// In (0, hi].
    UpTo(f64),
    /// A count ≥ 1.
    AtLeastOne,
}

impl Check {
    /// `None` if `v` is in range, else what is wrong with it.
    fn problem(self, v: Value) -> Option<String> {
        let x = match v {
            Value::Float(x) => x,
            Value::Count(n) => {
                return (self == Check::AtLeastOne && n == 0).then(|| "must be >= 1".into());
            }
            Value::Flag(_) | Value::Choice(_) => return None,
        };
        let ok = match self {
            Check::Any => true,
            Check::Positive => x.is_finite() && x > 0.0,
            Check::NonNegative => x.is_finite() && x >= 0.0,
            Check::Decay => (0.0..1.0).contains(&x),
            Check::UpTo(hi) => x > 0.0 && x <= hi,
            Check::AtLeastOne => x >= 1.0,
        };
        (!ok).then(|| match self {
            Check::Positive => format!("must be a finite number > 0, got {x}"),
            Check::NonNegative => format!("must be a finite number >= 0, got {x}"),
            Check::Decay => format!("must be in [0, 1), got {x}"),
            Check::UpTo(hi) => format!("must be in (0, {hi}], got {x}"),
            Check::Any | Check::AtLeastOne => format!("must be >= 1, got {x}"),
        })
    }
}

/// How an option of a `G` is read and written: by kind, so the setter never sees a value of
/// the wrong type.
pub enum Access<G> {
    Float {
        get: fn(&G) -> f64,
        set: fn(&mut G, f64),
    },
    Count {
        get: fn(&G) -> u64,
        set: fn(&mut G, u64),
    },
    Flag {
        get: fn(&G) -> bool,
        set: fn(&mut G, bool),
    },
    Choice {
        names: &'static [&'static str],
        get: fn(&G) -> &'static str,
        /// Sets the variant called `name`; false if there is none.
        set: fn(&mut G, &str) -> bool,
    },
}

/// One option of a config struct `G`.
pub struct OptionSpec<G: 'static> {
    /// Dotted path below `G` (`cagrad.c` in `MethodOptions`, `beta` in `ModSyncOptions`).
    pub path: &'static str,
    /// One line for `--help` and `modsync methods`.
    pub help: &'static str,
    pub check: Check,
    pub access: Access<G>,
}

impl<G> OptionSpec<G> {
    pub const fn float(
        path: &'static str,
        help: &'static str,
        check: Check,
        get: fn(&G) -> f64,
        set: fn(&mut G, f64),
    ) -> Self {
        Self {
            path,
            help,
            check,
            access: Access::Float { get, set },
        }
    }

    /// A count (`u64` or `usize` field).
    pub const fn count(
        path: &'static str,
        help: &'static str,
        check: Check,
        get: fn(&G) -> u64,
        set: fn(&mut G, u64),
    ) -> Self {
        Self {
            path,
            help,
            check,
            access: Access::Count { get, set },
        }
    }

    pub const fn flag(
        path: &'static str,
        help: &'static str,
        get: fn(&G) -> bool,
        set: fn(&mut G, bool),
    ) -> Self {
        Self {
            path,
            help,
            check: Check::Any,
            access: Access::Flag { get, set },
        }
    }

    pub const fn choice(
        path: &'static str,
        help: &'static str,
        names: &'static [&'static str],
        get: fn(&G) -> &'static str,
        set: fn(&mut G, &str) -> bool,
    ) -> Self {
        Self {
            path,
            help,
            check: Check::Any,
            access: Access::Choice { names, get, set },
        }
    }

    /// The option's value in `group`.
    pub fn get(&self, group: &G) -> Value {
        match &self.access {
            Access::Float { get, .. } => Value::Float(get(group)),
            Access::Count { get, .. } => Value::Count(get(group)),
            Access::Flag { get, .. } => Value::Flag(get(group)),
            Access::Choice { get, .. } => Value::Choice(get(group)),
        }
    }

    /// What a command line shows for the value (`F`, `N`, `BOOL`, `center|proj|avg`).
    pub fn value_name(&self) -> String {
        match &self.access {
            Access::Float { .. } => "F".into(),
            Access::Count { .. } => "N".into(),
            Access::Flag { .. } => "BOOL".into(),
            Access::Choice { names, .. } => names.join("|"),
        }
    }

    /// Reads `raw` as a value of this option's kind (not its range: that is
    /// [`OptionSpec::validate`]'s, on the whole config).
    pub fn parse(&self, raw: &str) -> Result<Value, String> {
        Ok(match &self.access {
            Access::Float { .. } => {
                Value::Float(raw.parse().map_err(|e: ParseFloatError| e.to_string())?)
            }
            Access::Count { .. } => {
                Value::Count(raw.parse().map_err(|e: ParseIntError| e.to_string())?)
            }
            Access::Flag { .. } => {
                Value::Flag(raw.parse().map_err(|e: ParseBoolError| e.to_string())?)
            }
            Access::Choice { names, .. } => match names.iter().find(|n| **n == raw) {
                Some(name) => Value::Choice(name),
                None => return Err(format!("expected one of {}, got {raw:?}", names.join(", "))),
            },
        })
    }

    /// Sets the option in `group` from its text `raw`; the error says what is wrong.
    pub fn set(&self, group: &mut G, raw: &str) -> Result<(), String> {
        match (&self.access, self.parse(raw)?) {
            (Access::Float { set, .. }, Value::Float(v)) => set(group, v),
            (Access::Count { set, .. }, Value::Count(v)) => set(group, v),
            (Access::Flag { set, .. }, Value::Flag(v)) => set(group, v),
            (Access::Choice { set, .. }, Value::Choice(v)) if set(group, v) => {}
            _ => return Err(format!("{raw:?} does not fit option {}", self.path)),
        }
        Ok(())
    }

    /// Checks the option's value in `group`; `prefix` is `G`'s path in the config, so the
    /// error names the field in full (`method_options.cagrad.c`).
    pub fn validate(&self, group: &G, prefix: &str) -> Result<(), ConfigError> {
        match self.check.problem(self.get(group)) {
            None => Ok(()),
            Some(problem) => Err(ConfigError::new(format!("{prefix}.{}", self.path), problem)),
        }
    }
}

/// Checks every option of `specs` in `group`, in order; the first error wins.
pub fn validate_all<G>(
    group: &G,
    specs: &[OptionSpec<G>],
    prefix: &str,
) -> Result<(), ConfigError> {
    specs.iter().try_for_each(|s| s.validate(group, prefix))
}
