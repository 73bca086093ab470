//! What a token is asked for: [`Downstream`].

/// The downstream API an exchanged token is for: RFC 8693 `audience` (the API's identifier
/// at the identity provider), optionally `resource` (its URL) and the `scope` asked for.
///
/// ```
/// use tower_mcp_auth::exchange::Downstream;
///
/// let crm = Downstream::audience("crm-api").scopes(["crm:read", "crm:write"]);
/// assert_eq!(crm.audience_name(), "crm-api");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Downstream {
    audience: String,
    resource: Option<String>,
    /// Sorted and without duplicates: the cache key does not depend on their order.
    scopes: Vec<String>,
}

impl Downstream {
    /// A token for the API the identity provider knows as `audience`.
    pub fn audience(audience: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            resource: None,
            scopes: Vec::new(),
        }
    }

    /// Also sends `resource` (RFC 8707: the API's absolute URL), for providers that want it.
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::Downstream;
    /// let d = Downstream::audience("crm").resource("https://crm.example.com/api");
    /// # let _ = d;
    /// ```
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// The scopes asked for (none: the provider's default for the audience).
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::Downstream;
    /// let d = Downstream::audience("crm").scopes(["b", "a", "b"]);
    /// assert_eq!(d.scope_list(), ["a", "b"]);
    /// ```
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self.scopes.sort();
        self.scopes.dedup();
        self
    }

    /// The audience.
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::Downstream;
    /// assert_eq!(Downstream::audience("crm").audience_name(), "crm");
    /// ```
    pub fn audience_name(&self) -> &str {
        &self.audience
    }

    /// The resource, if any.
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::Downstream;
    /// assert_eq!(Downstream::audience("crm").resource_url(), None);
    /// ```
    pub fn resource_url(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The scopes, sorted.
    ///
    /// ```
    /// # use tower_mcp_auth::exchange::Downstream;
    /// assert!(Downstream::audience("crm").scope_list().is_empty());
    /// ```
    pub fn scope_list(&self) -> &[String] {
        &self.scopes
    }
}
