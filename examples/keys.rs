//! Operator CLI for API keys kept in a `KeyStore` (PostgreSQL, SQLite or Redis). Servers
//! running `KeySync` on the same store pick every change up within their sync interval
//! (2 s by default): no redeploy.
//!
//! ```sh
//! export KEY_STORE_URL=postgres://postgres@127.0.0.1/test   # or redis://…, sqlite:keys.db
//! cargo run --example keys --features postgres -- create --user alice --permissions 'tools/call:*'
//! cargo run --example keys --features postgres -- list
//! cargo run --example keys --features postgres -- rotate key_0123456789abcdef --grace 1h
//! cargo run --example keys --features postgres -- revoke key_0123456789abcdef
//! ```
//!
//! Options: `--store URL` (instead of `KEY_STORE_URL`), `--json` (machine-readable output).
//! `create` also takes `--name`, `--role`, `--expires-in 30d`; `--permissions` takes a
//! comma-separated list and may be repeated. Durations: `90s`, `15m`, `1h`, `7d` or seconds.
//!
//! The plaintext of a key is printed once, by `create` and `rotate`, and stored nowhere.
//! Exit status: 0 done, 1 the store refused or failed, 2 bad arguments.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tower_mcp_auth::keys::{self, CreatedKey, KeyInfo, KeysError};
use tower_mcp_auth::ApiKeySpec;

const USAGE: &str = "usage: keys [--store URL] [--json] <command>
  create --user ID [--name NAME] [--role ROLE] [--permissions P,P...] [--expires-in DURATION]
  list
  rotate <id> [--grace DURATION]     (default grace: 1h; 0 stops the old key now)
  revoke <id>
The store URL comes from --store or KEY_STORE_URL (redis://, postgres://, sqlite:PATH).";

/// Grace period of `rotate` when `--grace` is not given.
const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

enum Command {
    Create(ApiKeySpec),
    List,
    Rotate { id: String, grace: Duration },
    Revoke { id: String },
}

struct Args {
    store: String,
    json: bool,
    command: Command,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1).collect()) {
        Ok(args) => args,
        Err(message) if message == "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), KeysError> {
    let store = keys::connect(&args.store).await?;
    match args.command {
        Command::Create(spec) => {
            let created = store.create(spec).await?;
            print_created(&created, args.json, "created");
        }
        Command::List => {
            let listed = store.list().await?;
            if args.json {
                let all: Vec<Value> = listed.iter().map(info_json).collect();
                println!("{}", Value::Array(all));
            } else {
                print_table(&listed);
            }
        }
        Command::Rotate { id, grace } => {
            let created = store.rotate(&id, grace).await?;
            print_created(&created, args.json, "rotated in");
        }
        Command::Revoke { id } => {
            store.revoke(&id).await?;
            if args.json {
                println!("{}", json!({"revoked": id}));
            } else {
                println!("revoked {id}");
            }
        }
    }
    Ok(())
}

fn parse(argv: Vec<String>) -> Result<Args, String> {
    let mut store = std::env::var("KEY_STORE_URL").ok();
    let mut json = false;
    let mut positional = Vec::new();
    let mut user = None;
    let mut name = None;
    let mut role = None;
    let mut permissions: Vec<String> = Vec::new();
    let mut expires_in = None;
    let mut grace = None;
    let mut argv = argv.into_iter();
    while let Some(arg) = argv.next() {
        let mut value = |flag: &str| argv.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--store" => store = Some(value("--store")?),
            "--json" => json = true,
            "--user" => user = Some(value("--user")?),
            "--name" => name = Some(value("--name")?),
            "--role" => role = Some(value("--role")?),
            "--permissions" => permissions.extend(
                value("--permissions")?
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            ),
            "--expires-in" => expires_in = Some(duration(&value("--expires-in")?)?),
            "--grace" => grace = Some(duration(&value("--grace")?)?),
            "-h" | "--help" => return Err("help".into()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => positional.push(arg),
        }
    }
    let store = store.ok_or("no store: pass --store URL or set KEY_STORE_URL")?;
    let command = match positional.as_slice() {
        [c] if c == "create" => {
            let user = user.ok_or("create needs --user")?;
            let mut spec = ApiKeySpec::new(name.unwrap_or_else(|| format!("{user} key")))
                .user_id(user)
                .permissions(permissions);
            if let Some(role) = role {
                spec = spec.role(role);
            }
            if let Some(after) = expires_in {
                let at = SystemTime::now()
                    .checked_add(after)
                    .ok_or("--expires-in is too large")?;
                spec = spec.expires_at(at);
            }
            Command::Create(spec)
        }
        [c] if c == "list" => Command::List,
        [c, id] if c == "rotate" => Command::Rotate {
            id: id.clone(),
            grace: grace.unwrap_or(DEFAULT_GRACE),
        },
        [c, id] if c == "revoke" => Command::Revoke { id: id.clone() },
        [] => return Err("no command".into()),
        other => return Err(format!("unknown command {:?}", other.join(" "))),
    };
    Ok(Args {
        store,
        json,
        command,
    })
}

/// `90s`, `15m`, `1h`, `7d`, or plain seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (90s, 15m, 1h, 7d)");
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

fn print_created(created: &CreatedKey, json: bool, verb: &str) {
    if json {
        let mut out = info_json(created.info());
        out["key"] = Value::from(created.plaintext());
        println!("{out}");
    } else {
        let info = created.info();
        println!("{verb} {} ({})", info.id, info.name);
        println!("key: {}", created.plaintext());
        println!("This is the only time the key is shown: only its SHA-256 hash is stored.");
    }
}

fn secs(t: Option<SystemTime>) -> Value {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(Value::Null, |d| Value::from(d.as_secs()))
}

fn info_json(k: &KeyInfo) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "user_id": k.user_id,
        "role": k.role,
        "permissions": k.permissions,
        "created_at": secs(Some(k.created_at)),
        "expires_at": secs(k.expires_at),
        "revoked_at": secs(k.revoked_at),
        "rotated_to": k.rotated_to,
        "last_used_at": secs(k.last_used_at),
        "usable": k.is_usable(SystemTime::now()),
    })
}

fn print_table(keys: &[KeyInfo]) {
    let now = SystemTime::now();
    println!(
        "{:<20}  {:<8}  {:<16}  {:<20}  permissions",
        "id", "status", "user", "name"
    );
    for k in keys {
        let status = match (k.revoked_at, k.is_usable(now)) {
            (Some(_), _) => "revoked",
            (None, true) => "active",
            (None, false) => "expired",
        };
        println!(
            "{:<20}  {:<8}  {:<16}  {:<20}  {}",
            k.id,
            status,
            k.user_id.as_deref().unwrap_or("-"),
            k.name,
            k.permissions.join(",")
        );
    }
}
