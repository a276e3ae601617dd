//! Choices spelled as words (menus, URLs, the JS API): one table per choice.

/// A name that is none of the accepted ones.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown {what} '{name}': choose one of {choices}")]
pub struct UnknownName {
    /// What was being named ("method", "smoothing", …).
    pub what: &'static str,
    /// The name given.
    pub name: String,
    /// The accepted names, comma-separated.
    pub choices: String,
}

/// The value `name` stands for in `table`.
pub(crate) fn by_name<T: Clone>(what: &'static str, name: &str, table: &[(&str, T)]) -> Result<T, UnknownName> {
    table.iter().find(|(known, _)| *known == name).map(|(_, value)| value.clone()).ok_or_else(|| {
        UnknownName {
            what,
            name: name.to_owned(),
            choices: table.iter().map(|(known, _)| *known).collect::<Vec<_>>().join(", "),
        }
    })
}
