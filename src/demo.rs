//! Demo data: seed 003's six users, channels and messages (with their exact IDs) and seed 002's
//! four users. Loading twice changes nothing.

use redis::AsyncCommands;

use crate::error::{Error, Result};
use crate::store::users::ProfileUpdate;
use crate::store::{keys, Store};

/// The password every demo user signs in with.
pub const DEMO_PASSWORD: &str = "password123";

/// (username, firstname, lastname, city, country)
const USERS: &[(&str, &str, &str, &str, &str)] = &[
    ("wasim", "Wasim", "Akram", "Lahore", "Pakistan"),
    ("simon", "Simon", "Prickett", "Nottingham", "England"),
    ("antirez", "Salvatore", "Sanfilippo", "Palermo", "Italy"),
    ("yaz", "Yasmin", "Khan", "Karachi", "Pakistan"),
    ("woz", "Steve", "Wozniak", "Cupertino", "United States"),
    ("ada", "Ada", "Lovelace", "Ravenshead", "England"),
    ("pablo", "Pablo", "", "", ""),
    ("joe", "Joe", "", "", ""),
    ("mary", "Mary", "", "", ""),
    ("alex", "Alex", "", "", ""),
];

/// (id, username, channel, message), as seed 003's sample data has them.
const MESSAGES: &[(&str, &str, &str, &str)] = &[
    (
        "1631623305083-0",
        "wasim",
        "cricket",
        "Did you see the test match this weekend?",
    ),
    (
        "1631623314829-0",
        "ada",
        "tech",
        "Really excited for the new Redis release!",
    ),
    ("1631623324707-0", "wasim", "tech", "Me too."),
    (
        "1631623332491-0",
        "woz",
        "random",
        "Warm and sunny here in California today, what's it like where you are?",
    ),
    (
        "1631623342013-0",
        "yaz",
        "cricket",
        "Yes, some incredible batting there.",
    ),
    (
        "1631623342744-0",
        "simon",
        "cricket",
        "Fantastic catch to win the game too.",
    ),
];

/// What a load added.
#[derive(Debug, Default)]
pub struct Loaded {
    pub users: usize,
    pub messages: usize,
}

impl Store {
    /// Loads the demo data; existing users and messages are left as they are.
    pub async fn load_demo(&self) -> Result<Loaded> {
        let mut loaded = Loaded::default();
        for (username, first, last, city, country) in USERS {
            let profile = ProfileUpdate {
                firstname: Some(first.to_string()),
                lastname: Some(last.to_string()),
                city: Some(city.to_string()),
                country: Some(country.to_string()),
                ..Default::default()
            };
            match crate::accounts::register(self, username, DEMO_PASSWORD, profile).await {
                Ok(s) => {
                    self.revoke_session(&s.token).await?;
                    loaded.users += 1;
                }
                Err(Error::UsernameTaken) => {}
                Err(e) => return Err(e),
            }
        }
        let mut conn = self.conn().await?;
        let mut to_index = Vec::new();
        for (id, username, channel, text) in MESSAGES {
            let exists: bool = conn.exists(keys::message(channel, id)).await?;
            let _: () = redis::pipe()
                .sadd(keys::CHANNELS, *channel)
                .sadd(keys::members(channel), *username)
                .sadd(keys::memberships(username), *channel)
                .query_async(&mut conn)
                .await?;
            if exists {
                continue;
            }
            let uuid: String = conn
                .hget(keys::user(username), "uuid")
                .await
                .unwrap_or_default();
            let added: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(keys::channel(channel))
                .arg(*id)
                .arg(&[
                    "type", "message", "username", username, "message", text, "uuid", &uuid,
                ])
                .query_async(&mut conn)
                .await;
            if added.is_err() {
                // The stream already has later entries; the hash still makes the message searchable.
                log::warn!("demo message {id} not added to channel:{channel}: stream is ahead");
            }
            let created_at = id.split('-').next().unwrap_or("0");
            let _: () = conn
                .hset_multiple(
                    keys::message(channel, id),
                    &[
                        ("username", *username),
                        ("channel", *channel),
                        ("message", *text),
                        ("created_at", created_at),
                        ("uuid", uuid.as_str()),
                        ("type", "message"),
                    ],
                )
                .await?;
            to_index.push(keys::message(channel, id));
            loaded.messages += 1;
        }
        drop(conn);
        for key in to_index {
            self.index_hash(keys::messages_index(), &key).await;
        }
        Ok(loaded)
    }
}
