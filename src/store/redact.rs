//! `Debug` for the rows that hold patient data (raw mail, stored forms, message bodies): ids,
//! addresses and sizes only, so that a `?row` in a log line cannot leak a body.

use std::fmt;

use super::{InboundRow, NewInbound, NewThreadMessage, OutboxRow, ThreadRow};

impl fmt::Debug for NewInbound<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewInbound")
            .field("uid", &self.uid)
            .field("message_id", &self.message_id)
            .field("from_addr", &self.from_addr)
            .field("size", &self.raw.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for InboundRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundRow")
            .field("meta", &self.meta)
            .field("raw_size", &self.raw.len())
            .finish()
    }
}

impl fmt::Debug for ThreadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadRow")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("category", &self.category)
            .field("requester", &self.requester)
            .field("form_json_len", &self.form_json.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for NewThreadMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewThreadMessage")
            .field("thread_id", &self.thread_id)
            .field("direction", &self.direction)
            .field("kind", &self.kind)
            .field("from_addr", &self.from_addr)
            .field("message_id", &self.message_id)
            .field("body_len", &self.body_text.as_ref().map(String::len))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for OutboxRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxRow")
            .field("id", &self.id)
            .field("message_id", &self.message_id)
            .field("thread_id", &self.thread_id)
            .field("kind", &self.kind)
            .field("recipients", &self.recipients)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .field("raw_size", &self.raw.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_holding_patient_data_do_not_show_it() {
        let now = chrono::Utc::now();
        let mut row = crate::store::testutil::sample_thread("TE-2026-000001", "nouvelle", now);
        row.form_json = r#"{"patient":{"birth_name":"DUPONT"}}"#.into();
        let shown = format!("{row:?}");
        assert!(
            shown.contains("TE-2026-000001") && !shown.contains("DUPONT"),
            "{shown}"
        );
        let mut inbound = crate::store::testutil::sample_inbound(1);
        inbound.raw = b"Subject: x\r\n\r\nNom : DUPONT\r\n".to_vec().into();
        let shown = format!("{inbound:?}");
        assert!(!shown.contains("DUPONT"), "{shown}");
        let message = NewThreadMessage {
            thread_id: "TE-2026-000001".into(),
            direction: crate::store::Direction::In,
            kind: crate::store::MessageKind::Request,
            from_addr: "dr.martin@cabinet.test".into(),
            to_addrs: vec![],
            at: now,
            message_id: None,
            author_name: None,
            author_rpps: None,
            body_text: Some("Nom : DUPONT".into()),
            attachments_json: "[]".into(),
            inbound_id: None,
            outbox_id: None,
        };
        let shown = format!("{message:?}");
        assert!(
            shown.contains("Request") && !shown.contains("DUPONT"),
            "{shown}"
        );
    }
}
