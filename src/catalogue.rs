//! The categories and time zone, compiled once from the settings: each category with its
//! checked `FormTemplate`, parsed addresses and response time. `check-config` builds the same
//! catalogue, so a file that passes it cannot make a category's requests fail at run time.

use crate::address::EmailAddress;
use crate::config::Settings;
use crate::form::{self, FormTemplate};

/// One téléexpertise category (specialty), ready for use.
#[derive(Debug, Clone)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub group_address: EmailAddress,
    pub aliases: Vec<EmailAddress>,
    pub experts: Vec<EmailAddress>,
    /// The usual response time, as written for GPs (may be empty).
    pub response_time: String,
    /// Phone number for urgent cases, given in the acknowledgement.
    pub phone: Option<String>,
    /// Hours within which an expert should answer (the desk's deadline, issue 10).
    pub deadline_hours: f64,
    /// The urgent line's deadline, when the category has one.
    pub urgent_deadline_minutes: Option<u32>,
    /// Where a thread unanswered at twice its deadline is escalated.
    pub escalation_address: EmailAddress,
    /// Common fields plus the category's own.
    pub template: FormTemplate,
}

/// A category that does not compile: its configuration key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueProblem {
    pub key: String,
    pub message: String,
}

/// Every category, in configuration order, and the gateway's time zone.
#[derive(Debug, Clone)]
pub struct Catalogue {
    categories: Vec<Category>,
    pub tz: chrono_tz::Tz,
}

impl Catalogue {
    /// Compiles the settings' categories. The problems are those `check-config` reports; the
    /// catalogue returned beside them leaves out the categories at fault (a daemon only ever
    /// runs on a file that passed, see `config::load_and_validate`).
    pub fn compile(settings: &Settings) -> (Catalogue, Vec<CatalogueProblem>) {
        let mut problems = vec![];
        let mut categories = vec![];
        for (n, c) in settings.categories.iter().enumerate() {
            match FormTemplate::for_category(&c.fields) {
                Ok(template) => categories.push(Category {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    group_address: c.group_address.clone(),
                    aliases: c.aliases.clone(),
                    experts: c.experts.clone(),
                    response_time: c.response_time.clone(),
                    phone: c.phone.clone(),
                    deadline_hours: c.deadline_hours,
                    urgent_deadline_minutes: c.urgent_deadline_minutes,
                    escalation_address: (c.escalation_address.clone())
                        .unwrap_or_else(|| settings.gateway.admin_address.clone()),
                    template,
                }),
                Err(e) => problems.push(CatalogueProblem {
                    key: format!("category[{n}].fields"),
                    message: e.to_string(),
                }),
            }
        }
        // An invalid zone is a problem `Settings::problems` already reports.
        let tz = settings
            .gateway
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Europe::Paris);
        (Catalogue { categories, tz }, problems)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Category> {
        self.categories.iter()
    }

    /// The category with this id (case-insensitive).
    pub fn get(&self, id: &str) -> Option<&Category> {
        self.categories
            .iter()
            .find(|c| c.id.eq_ignore_ascii_case(id))
    }

    /// Every category id, for `#transferer`.
    pub fn ids(&self) -> Vec<&str> {
        self.categories.iter().map(|c| c.id.as_str()).collect()
    }

    /// The category a `Catégorie :` line names, by id or name (case, accents, spacing aside).
    pub fn by_name(&self, written: &str) -> Option<&Category> {
        let w = form::fold_label(written);
        self.categories
            .iter()
            .find(|c| form::fold_label(&c.id) == w || form::fold_label(&c.name) == w)
    }

    /// The category one of these recipient addresses is an alias of.
    pub fn by_alias(&self, recipients: &[EmailAddress]) -> Option<&Category> {
        self.categories.iter().find(|c| {
            c.aliases
                .iter()
                .any(|a| recipients.iter().any(|r| r.base() == a.base()))
        })
    }

    /// The category whose group mailbox or expert list holds this address.
    pub fn of_member(&self, address: &EmailAddress) -> Option<&Category> {
        self.categories.iter().find(|c| {
            c.group_address.base() == address.base()
                || c.experts.iter().any(|e| e.base() == address.base())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::FieldSettings;

    fn field(key: &str, label: &str) -> FieldSettings {
        FieldSettings {
            key: key.into(),
            label: label.into(),
            aliases: vec![],
            required: false,
            kind: "text".into(),
            choices: vec![],
        }
    }

    #[test]
    fn a_category_with_a_duplicate_label_is_a_problem_and_left_out() {
        let mut settings = crate::config::dev_settings();
        let (ok, problems) = Catalogue::compile(&settings);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(ok.ids(), ["infectio", "pneumo"]);
        assert_eq!(ok.tz, chrono_tz::Europe::Paris);
        settings.categories[1].fields = vec![field("a", "Terrain"), field("b", "terrain")];
        let (cat, problems) = Catalogue::compile(&settings);
        assert_eq!(cat.ids(), ["infectio"]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "category[1].fields");
        assert!(problems[0].message.contains("already used"), "{problems:?}");
    }
}
