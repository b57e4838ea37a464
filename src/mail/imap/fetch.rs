//! Reading one message: its bytes, its header block alone, its size.

use futures::TryStreamExt as _;

use crate::mail::MailError;

use super::{Ctx, ImapClient, limited};

impl ImapClient {
    /// The message's exact bytes (`BODY.PEEK[]`, the `\Seen` flag is left alone); `None` when
    /// no message has this UID any more.
    pub async fn fetch_raw(&mut self, uid: u32) -> Result<Option<Vec<u8>>, MailError> {
        self.fetch_one(uid, "uid fetch", "(UID BODY.PEEK[])", |f| {
            f.body().map(<[u8]>::to_vec)
        })
        .await
    }

    /// The message's header block alone (`BODY.PEEK[HEADER]`, up to and including the empty
    /// line), for mail too large to download; `None` when no message has this UID any more.
    pub async fn fetch_header(&mut self, uid: u32) -> Result<Option<Vec<u8>>, MailError> {
        self.fetch_one(uid, "uid fetch header", "(UID BODY.PEEK[HEADER])", |f| {
            f.header().map(<[u8]>::to_vec)
        })
        .await
    }

    /// The message's size in bytes (`RFC822.SIZE`, to refuse oversized mail before fetching
    /// it); `None` when no message has this UID any more.
    pub async fn size(&mut self, uid: u32) -> Result<Option<u32>, MailError> {
        self.fetch_one(uid, "uid fetch size", "(UID RFC822.SIZE)", |f| f.size)
            .await
    }

    /// `UID FETCH uid items`, and what `pick` takes from the response about that UID.
    async fn fetch_one<T>(
        &mut self,
        uid: u32,
        step: &'static str,
        items: &'static str,
        pick: impl Fn(&async_imap::types::Fetch) -> Option<T>,
    ) -> Result<Option<T>, MailError> {
        let host = self.host.clone();
        let ctx = Ctx {
            host: &host,
            port: self.port,
        };
        let session = &mut self.session;
        limited(&ctx, step, async move {
            let stream = session.uid_fetch(uid.to_string(), items).await?;
            let fetches: Vec<async_imap::types::Fetch> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(
                fetches
                    .iter()
                    .filter(|f| f.uid == Some(uid))
                    .find_map(&pick),
            )
        })
        .await
    }
}
