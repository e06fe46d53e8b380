//! TEMPORARY stand-in, replaced by the reference-data branch.
/// Forms.
#[derive(Debug, Clone, Default)]
pub struct Forms;
impl Forms {
    /// Built-in forms.
    pub fn builtin() -> Forms {
        Forms
    }
}
