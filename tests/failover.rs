//! Two `teleavis run` on one PostgreSQL database and one mailbox: one holds the mailbox lease,
//! both send from the outbox without sending anything twice, and when the holder dies the other
//! takes over within seconds.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::time::Duration;

use common::{MailSystem, compose_signed_encrypted, user_email};
use gateway::{Db, GATEWAY, Gateway, INFECTIO, postgres_available};

const T: Duration = Duration::from_secs(60);

fn request(n: usize) -> Vec<u8> {
    let form =
        std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
            .unwrap();
    compose_signed_encrypted(
        "gp",
        "teleexpertise+infectio@hopital.test",
        "gateway",
        &format!("Demande {n}"),
        // a distinct signed text: the same one signed in the same second is a replay
        &format!("{form}\n-- \nDemande {n}\n"),
        &[],
    )
}

#[test]
fn second_instance_takes_over_the_mailbox_when_the_first_dies() {
    if !postgres_available() {
        return;
    }
    let mail = MailSystem::start();
    let mut a = Gateway::new(&mail, Db::Postgres);
    let mut b = a.sharing_database();
    // Short SMTP time limits, so that the rows the dead instance had claimed are taken over
    // quickly (claims last 3 × smtp.timeout_seconds + 15 s).
    let env = [("TELEAVIS__SMTP__TIMEOUT_SECONDS", "5")];
    a.start_with_env(&env);
    b.start_with_env(&env);
    let gp = user_email("gp");
    for n in 0..3 {
        mail.send_raw(&gp, &["teleexpertise+infectio@hopital.test"], &request(n));
    }
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 3, T),
        "A:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    // Only one instance reads the mailbox at a time.
    let holders = [a.log(), b.log()]
        .iter()
        .filter(|l| l.contains("mailbox lease acquired"))
        .count();
    assert_eq!(holders, 1, "exactly one lease holder");
    let (holder, other) = if a.log().contains("mailbox lease acquired") {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    holder.kill();
    for n in 3..5 {
        mail.send_raw(&gp, &["teleexpertise+infectio@hopital.test"], &request(n));
    }
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 5, T),
        "the survivor did not take over:\n{}",
        other.log()
    );
    assert!(other.log().contains("mailbox lease acquired"));
    assert_eq!(other.threads().len(), 5, "no duplicate, no loss");
    // Every acknowledgement and forward exactly once, those the dead instance had claimed too.
    let takeover = Duration::from_secs(90);
    assert!(
        mail.wait_for_count(&gp, "INBOX", 5, takeover),
        "{}",
        other.log()
    );
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 5, takeover));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(mail.count(&gp, "INBOX"), 5);
    assert_eq!(mail.count(INFECTIO, "INBOX"), 5);
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0);
    other.stop();
}
