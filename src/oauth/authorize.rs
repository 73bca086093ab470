//! [`LoginPolicy`]: who may log in. Authentication says who the provider vouches for; the
//! policy decides, before any session is issued, whether that account may use this service.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::Deserialize;

use crate::deferred::BoxFuture;

use super::http::HttpClient;
use super::UserInfo;

type Check = Arc<dyn Fn(UserInfo) -> BoxFuture<bool> + Send + Sync>;

enum Rule {
    Users(HashSet<String>),
    Emails(HashSet<String>),
    Domains(HashSet<String>),
    GithubOrgs(Vec<String>),
    Tenants(HashSet<String>),
    Claim { name: String, values: Vec<String> },
    Custom(Check),
}

/// Who may log in with an [`OAuthClient`](super::OAuthClient): checked after the provider
/// has vouched for the user and before a session is issued
/// ([`OAuthClientBuilder::login_policy`](super::OAuthClientBuilder::login_policy)).
///
/// A login is allowed when **any** rule matches; a policy without rules allows nobody. A
/// refused login answers `403` with `error: "access_denied"` (JSON, or the small HTML page
/// for browsers) and never sets a session cookie. For "all of" conditions (a tenant *and* a
/// group), write one [`allow_if`](Self::allow_if) check.
///
/// | rule | matches | notes |
/// |---|---|---|
/// | [`allow_users`](Self::allow_users) | the namespaced user id ([`UserInfo::user_id`]) | `github:583231`, `google:1098…`; stable, unlike logins and e-mails |
/// | [`allow_emails`](Self::allow_emails) | the **verified** e-mail, whole address, ASCII case-insensitive | unverified addresses are never used |
/// | [`allow_email_domains`](Self::allow_email_domains) | the domain of the **verified** e-mail, exactly (`evil-example.com` and `example.com.evil.io` are not `example.com`; no subdomains) | |
/// | [`allow_github_orgs`](Self::allow_github_orgs) | an **active** membership (not a pending invitation) in one of the orgs, from `GET {api}/user/memberships/orgs/{org}` | GitHub providers only; `read:org` is added to their scopes |
/// | [`allow_tenants`](Self::allow_tenants) | the Microsoft Entra tenant id (`tid`) of the `id_token` | Microsoft providers only |
/// | [`allow_claim`](Self::allow_claim) | a claim (`id_token` / user info, GitHub's `/user`) equal to one of the values, or a list containing one | `email` is refused: use the e-mail rules |
/// | [`allow_if`](Self::allow_if) | your async check (a database or directory lookup) | return `false` on a failed lookup: fail closed |
///
/// ```
/// use tower_mcp_auth::oauth::LoginPolicy;
///
/// let policy = LoginPolicy::new()
///     .allow_email_domains(["example.com"])
///     .allow_github_orgs(["my-org"])
///     .allow_users(["github:583231"])
///     .allow_claim("groups", ["mcp-users"])
///     .allow_if(|user| async move {
///         // e.g. a lookup in your user table
///         user.user_id.starts_with("google:") && user.name.is_some()
///     });
/// assert!(policy.is_restricted());
/// assert!(!tower_mcp_auth::oauth::LoginPolicy::any_account().is_restricted());
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct LoginPolicy {
    rules: Arc<Vec<Rule>>,
    any: bool,
}

/// Lowercased, trimmed, non-empty entries.
fn normalized<I, S>(items: I, strip: &[char]) -> HashSet<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    items
        .into_iter()
        .map(|s| {
            s.as_ref()
                .trim()
                .trim_start_matches(strip)
                .to_ascii_lowercase()
        })
        .collect()
}

impl LoginPolicy {
    /// A policy that allows nobody until rules are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every account the providers vouch for may log in (any GitHub user, any Google account,
    /// any tenant of a multi-tenant Microsoft app). Only for services meant to be open to
    /// everyone with such an account; a warning is logged at start-up.
    pub fn any_account() -> Self {
        Self {
            rules: Arc::default(),
            any: true,
        }
    }

    /// Whether the policy restricts who may log in (it is not [`any_account`](Self::any_account)).
    pub fn is_restricted(&self) -> bool {
        !self.any
    }

    fn push(mut self, rule: Rule) -> Self {
        if Arc::get_mut(&mut self.rules).is_none() {
            // Shared with a clone: copy the list (closures are shared, not cloned).
            self.rules = Arc::new(self.rules.iter().map(Rule::share).collect());
        }
        if let Some(rules) = Arc::get_mut(&mut self.rules) {
            rules.push(rule);
        }
        self
    }

    /// Allows these users: namespaced user ids as in the session's `sub`
    /// (see [`UserInfo::user_id`]), compared exactly.
    pub fn allow_users<I, S>(self, users: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let users = users
            .into_iter()
            .map(|s| s.as_ref().trim().to_owned())
            .collect();
        self.push(Rule::Users(users))
    }

    /// Allows these e-mail addresses, when the provider says the address is verified.
    pub fn allow_emails<I, S>(self, emails: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.push(Rule::Emails(normalized(emails, &[])))
    }

    /// Allows verified e-mail addresses in these domains (exactly these domains, not their
    /// subdomains; a leading `@` is ignored).
    pub fn allow_email_domains<I, S>(self, domains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.push(Rule::Domains(normalized(domains, &['@'])))
    }

    /// Allows active members of these GitHub organizations (logins, case-insensitive). The
    /// client adds the `read:org` scope to its GitHub providers and asks the provider's API
    /// base (`github_urls`) at each login; a failed lookup refuses.
    pub fn allow_github_orgs<I, S>(self, orgs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let orgs = normalized(orgs, &[]).into_iter().collect();
        self.push(Rule::GithubOrgs(orgs))
    }

    /// Allows Microsoft accounts of these Entra tenants (tenant ids, the `tid` claim).
    pub fn allow_tenants<I, S>(self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.push(Rule::Tenants(normalized(tenants, &[])))
    }

    /// Allows users whose claim `name` is one of `values` (or a list holding one), compared
    /// exactly: `groups`, `roles`, Google's `hd`...
    pub fn allow_claim<I, S>(self, name: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.push(Rule::Claim {
            name: name.into(),
            values: values.into_iter().map(Into::into).collect(),
        })
    }

    /// Allows users for whom `check` answers `true`. It gets the [`UserInfo`] (verified
    /// e-mail only, namespaced `user_id`, every claim) and may look things up; answer `false`
    /// when a lookup fails.
    pub fn allow_if<F, Fut>(self, check: F) -> Self
    where
        F: Fn(UserInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let check: Check = Arc::new(move |user| Box::pin(check(user)));
        self.push(Rule::Custom(check))
    }

    pub(crate) fn needs_github_orgs(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r, Rule::GithubOrgs(o) if !o.is_empty()))
    }

    /// Checks the entries; the reason names the bad one's kind, never its value.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        let is_domain = |d: &str| {
            !d.is_empty()
                && d.len() <= 253
                && !d.starts_with('.')
                && !d.ends_with('.')
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        };
        for rule in self.rules.iter() {
            match rule {
                Rule::Users(u) if u.iter().any(|u| u.is_empty() || !u.contains(':')) => {
                    return Err("allowed users are namespaced user ids such as `github:583231`");
                }
                Rule::Emails(e)
                    if e.iter().any(|e| {
                        e.rsplit_once('@')
                            .is_none_or(|(l, d)| l.is_empty() || !is_domain(d))
                    }) =>
                {
                    return Err("an allowed e-mail is not an e-mail address");
                }
                Rule::Domains(d) if d.iter().any(|d| !is_domain(d)) => {
                    return Err("an allowed e-mail domain is not a domain name");
                }
                Rule::GithubOrgs(o)
                    if o.iter().any(|o| {
                        o.is_empty()
                            || o.len() > 39
                            || !o.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }) =>
                {
                    return Err("a GitHub organization is not an organization login");
                }
                Rule::Tenants(t) if t.iter().any(String::is_empty) => {
                    return Err("an allowed tenant is empty");
                }
                Rule::Claim { name, .. } if name.is_empty() => {
                    return Err("a claim rule has no claim name");
                }
                Rule::Claim { name, .. } if name == "email" || name == "email_verified" => {
                    return Err("use allow_emails / allow_email_domains for e-mails (they use the verified address only)");
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether `user` may log in. `github` is the provider's API and the user's token, for a
    /// GitHub login.
    pub(crate) async fn allows(&self, user: &UserInfo, github: Option<GithubApi<'_>>) -> bool {
        if self.any {
            return true;
        }
        let email = user.email.as_deref().map(str::to_ascii_lowercase);
        let domain = email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d);
        // Cheap rules first, then the ones that make requests.
        for rule in self.rules.iter() {
            let hit = match rule {
                Rule::Users(users) => users.contains(&user.user_id),
                Rule::Emails(emails) => email.as_ref().is_some_and(|e| emails.contains(e)),
                Rule::Domains(domains) => domain.is_some_and(|d| domains.contains(d)),
                Rule::Tenants(tenants) => user
                    .tenant
                    .as_deref()
                    .is_some_and(|t| tenants.contains(&t.to_ascii_lowercase())),
                Rule::Claim { name, values } => match user.claims.get(name) {
                    Some(serde_json::Value::String(s)) => values.contains(s),
                    Some(serde_json::Value::Array(items)) => items
                        .iter()
                        .filter_map(serde_json::Value::as_str)
                        .any(|s| values.iter().any(|v| v == s)),
                    _ => false,
                },
                Rule::GithubOrgs(_) | Rule::Custom(_) => false,
            };
            if hit {
                return true;
            }
        }
        for rule in self.rules.iter() {
            let hit = match (rule, &github) {
                (Rule::GithubOrgs(orgs), Some(api)) => {
                    let mut member = false;
                    for org in orgs {
                        if api.active_member(org).await {
                            member = true;
                            break;
                        }
                    }
                    member
                }
                (Rule::Custom(check), _) => check(user.clone()).await,
                _ => false,
            };
            if hit {
                return true;
            }
        }
        false
    }
}

impl Rule {
    fn share(&self) -> Rule {
        match self {
            Rule::Users(u) => Rule::Users(u.clone()),
            Rule::Emails(e) => Rule::Emails(e.clone()),
            Rule::Domains(d) => Rule::Domains(d.clone()),
            Rule::GithubOrgs(o) => Rule::GithubOrgs(o.clone()),
            Rule::Tenants(t) => Rule::Tenants(t.clone()),
            Rule::Claim { name, values } => Rule::Claim {
                name: name.clone(),
                values: values.clone(),
            },
            Rule::Custom(c) => Rule::Custom(Arc::clone(c)),
        }
    }
}

impl fmt::Debug for LoginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            return f.write_str("LoginPolicy(any account)");
        }
        let kinds: Vec<&str> = self
            .rules
            .iter()
            .map(|r| match r {
                Rule::Users(_) => "users",
                Rule::Emails(_) => "emails",
                Rule::Domains(_) => "email domains",
                Rule::GithubOrgs(_) => "GitHub orgs",
                Rule::Tenants(_) => "tenants",
                Rule::Claim { .. } => "claim",
                Rule::Custom(_) => "custom",
            })
            .collect();
        f.debug_tuple("LoginPolicy").field(&kinds).finish()
    }
}

/// The GitHub API of the provider a user logged in with, and that user's token.
pub(crate) struct GithubApi<'a> {
    pub(crate) http: &'a HttpClient,
    pub(crate) base: &'a str,
    pub(crate) token: &'a str,
}

#[derive(Deserialize)]
struct Membership {
    state: String,
    #[serde(default)]
    organization: Option<Org>,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

impl GithubApi<'_> {
    /// `GET {api}/user/memberships/orgs/{org}`: an active (accepted) membership of this org.
    /// 404 (not a member), 403 (the org restricts OAuth apps, or no `read:org`) and every
    /// other failure mean no.
    async fn active_member(&self, org: &str) -> bool {
        let url = format!("{}/user/memberships/orgs/{org}", self.base);
        match self
            .http
            .get_json::<Membership>(&url, Some(self.token))
            .await
        {
            Ok(m) => {
                m.state == "active"
                    && m.organization
                        .is_some_and(|o| o.login.eq_ignore_ascii_case(org))
            }
            Err(e) => {
                tracing::debug!(org, reason = %e, "no active GitHub organization membership");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::now_or_never;

    fn user(email: Option<&str>) -> UserInfo {
        let mut u = UserInfo::new("oidc", "1");
        u.email = email.map(str::to_owned);
        u
    }

    #[test]
    fn domains_match_exactly_and_case_insensitively() {
        let p = LoginPolicy::new().allow_email_domains(["@Example.com"]);
        assert!(p.validate().is_ok());
        let allows = |e| now_or_never(p.allows(&user(Some(e)), None));
        assert!(allows("ada@EXAMPLE.COM"));
        assert!(allows("a@b@example.com"));
        for refused in [
            "ada@evil-example.com",
            "ada@example.com.evil.io",
            "ada@sub.example.com",
            "example.com@evil.io",
            "ada@example.co",
        ] {
            assert!(!allows(refused), "{refused}");
        }
        assert!(!now_or_never(p.allows(&user(None), None)));
    }

    #[test]
    fn empty_policy_allows_nobody_and_bad_entries_are_refused() {
        assert!(!now_or_never(
            LoginPolicy::new().allows(&user(Some("a@b.c")), None)
        ));
        for bad in [
            LoginPolicy::new().allow_users(["583231"]),
            LoginPolicy::new().allow_emails(["not-an-email"]),
            LoginPolicy::new().allow_email_domains(["example.com/x"]),
            LoginPolicy::new().allow_email_domains([""]),
            LoginPolicy::new().allow_github_orgs(["../admin"]),
            LoginPolicy::new().allow_claim("email", ["a@b.c"]),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn clones_share_rules_and_adding_does_not_leak_into_the_original() {
        let base = LoginPolicy::new().allow_users(["github:1"]);
        let wider = base.clone().allow_users(["github:2"]);
        let two = UserInfo::new("github", "2");
        assert!(!now_or_never(base.allows(&two, None)));
        assert!(now_or_never(wider.allows(&two, None)));
    }
}
