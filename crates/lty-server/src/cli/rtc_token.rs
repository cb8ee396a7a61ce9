//! `lty rtc-token`: mint or verify a Volcengine RTC AccessToken locally.
//! Needs no configuration, database or network.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Args;
use lty_vendors::volcengine::rtc_token::{self, AccessToken, TokenError};

/// `lty rtc-token` arguments (DESIGN §7).
#[derive(Debug, Args)]
pub struct RtcTokenArgs {
    /// RTC AppId, exactly 24 characters.
    #[arg(
        long,
        value_name = "A",
        env = "VOLCENGINE_APP_ID",
        required_unless_present = "verify"
    )]
    pub app_id: Option<String>,
    /// RTC AppKey, the signing key.
    #[arg(
        long,
        value_name = "K",
        env = "VOLCENGINE_APP_KEY",
        hide_env_values = true
    )]
    pub app_key: String,
    /// Room id.
    #[arg(long, value_name = "R", required_unless_present = "verify")]
    pub room: Option<String>,
    /// RTC user id.
    #[arg(long, value_name = "U", required_unless_present = "verify")]
    pub user: Option<String>,
    /// Nonce (default: random 1..99999999).
    #[arg(long, value_name = "N")]
    pub nonce: Option<u32>,
    /// Issue time, Unix seconds (default: now).
    #[arg(long, value_name = "T")]
    pub issued_at: Option<u32>,
    /// Expiry, Unix seconds, 0 = never (default: now + 24 h).
    #[arg(long, value_name = "T")]
    pub expire_at: Option<u32>,
    /// Comma-separated ID=EXPIRE pairs; ID is 0-5 or a vendor name such as
    /// PrivPublishStream. "" = no privileges; omitted = ids 0-4 expiring
    /// with the token.
    #[arg(long, value_name = "LIST")]
    pub privileges: Option<String>,
    /// Decode TOKEN, check its signature with --app-key and print its fields
    /// as JSON (exit 1 if the signature is wrong).
    #[arg(
        long,
        value_name = "TOKEN",
        conflicts_with_all = ["room", "user", "nonce", "issued_at", "expire_at", "privileges"]
    )]
    pub verify: Option<String>,
}

/// Runs the command: the token alone on stdout, or the verify report.
pub fn run(args: RtcTokenArgs) -> ExitCode {
    match args.verify {
        Some(ref token) => verify(token, &args.app_key),
        None => match build(args) {
            Ok(token) => print_line(&token),
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(2)
            }
        },
    }
}

fn build(args: RtcTokenArgs) -> Result<String, TokenError> {
    let mut builder = AccessToken::builder(
        args.app_id.unwrap_or_default(),
        args.room.unwrap_or_default(),
        args.user.unwrap_or_default(),
    );
    if let Some(nonce) = args.nonce {
        builder = builder.nonce(nonce);
    }
    if let Some(t) = args.issued_at {
        builder = builder.issued_at(t);
    }
    if let Some(t) = args.expire_at {
        builder = builder.expire_at(t);
    }
    if let Some(list) = &args.privileges {
        builder = builder.privileges(rtc_token::parse_privilege_list(list)?);
    }
    Ok(builder.build()?.serialize(&args.app_key))
}

fn verify(token: &str, app_key: &str) -> ExitCode {
    let parsed = match rtc_token::parse(token) {
        Ok(p) => p,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let report = parsed.report(app_key, rtc_token::unix_now());
    let valid = report.signature_valid;
    let json = match serde_json::to_string(&report) {
        Ok(j) => j,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = print_line(&json);
    if !valid {
        eprintln!("error: {}", TokenError::BadSignature);
        return ExitCode::FAILURE;
    }
    code
}

fn print_line(line: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
