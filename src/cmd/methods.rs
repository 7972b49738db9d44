//! `modsync methods`: every gradient method with its options and defaults; and the
//! `--X.option` flags `modsync train` takes for them (`--modsync.beta 0.3`, `--cagrad.c 0.4`).
//! Both come from trainer-core's catalogue, so a method's options need nothing here.

use anyhow::Result;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use trainer_core::TrainConfig;
use trainer_core::catalogue::{self, catalogue};

#[derive(Args)]
pub struct MethodsArgs {}

pub fn run(_args: MethodsArgs) -> Result<()> {
    for m in catalogue() {
        println!("{}", m.key);
        println!("    {}", m.summary);
        for o in &m.options {
            let flag = format!("--{}", o.path);
            println!("    {flag:<30} {:<10} {}", o.default, o.help);
        }
        println!();
    }
    println!("Use `--method modsync+X` to wrap any method X in ModSync.");
    Ok(())
}

/// Method, ModSync and diagnostics options of `modsync train`: one flag per option of the
/// catalogue; unset flags keep the defaults (`modsync methods` lists them).
#[derive(Default)]
pub struct MethodFlags {
    /// (flag without `--`, its text), in command-line order.
    given: Vec<(String, String)>,
}

impl MethodFlags {
    /// Writes every given flag into `c`; the error names the field.
    pub fn apply(&self, c: &mut TrainConfig) -> Result<()> {
        for (path, raw) in &self.given {
            catalogue::set_option(c, path, raw)?;
        }
        Ok(())
    }
}

impl FromArgMatches for MethodFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for o in catalogue::options() {
            if let Some(raw) = matches.get_one::<String>(&o.path) {
                self.given.retain(|(path, _)| *path != o.path);
                self.given.push((o.path, raw.clone()));
            }
        }
        Ok(())
    }
}

impl Args for MethodFlags {
    fn augment_args(cmd: Command) -> Command {
        let cmd = cmd.next_help_heading("Method options (see `modsync methods`)");
        catalogue::options().into_iter().fold(cmd, |cmd, o| {
            let help = format!("{} [default: {}]", o.help, o.default);
            let check = o.clone();
            cmd.arg(
                Arg::new(o.path.clone())
                    .long(o.path)
                    .value_name(o.value_name)
                    .help(help)
                    .value_parser(move |raw: &str| check.parse(raw).map(|()| raw.to_string())),
            )
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
