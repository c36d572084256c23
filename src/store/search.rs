//! Full-text and tag search through RediSearch, on 1.x and 2.x alike.
//!
//! User text never reaches RediSearch as query syntax: every character that is not a letter or a
//! digit is escaped, so no input can widen a search. A value the module still refuses (RediSearch
//! 1.x: a stopword as a whole tag value) finds nothing, and a query holding a NUL is not sent
//! ([`Store::ft_search`]).

use std::collections::HashMap;

use serde::Serialize;

use super::users::{profile_from_hash, Profile};
use super::{keys, Store};
use crate::error::{Error, Result};

/// RediSearch's default stopwords.
pub const STOPWORDS: &[&str] = &[
    "a", "is", "the", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
    "it", "no", "not", "of", "on", "or", "such", "that", "their", "then", "there", "these", "they",
    "this", "to", "was", "will", "with",
];

/// Escapes a value for a TAG clause or a TEXT term.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for c in value.chars() {
        if c.is_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out
}

/// `@channel:{a|b|…}` over these channels, each escaped.
pub fn channel_filter(channels: &[String]) -> String {
    let names: Vec<String> = channels.iter().map(|c| escape(c)).collect();
    format!("@channel:{{{}}}", names.join("|"))
}

/// A comma-separated channel list from a query string (at most 50 names).
pub fn channel_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .take(50)
        .collect()
}

/// Words of free text, each escaped; empty words dropped.
pub fn terms(q: &str) -> Vec<String> {
    q.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(10)
        .map(escape)
        .collect()
}

/// What a user search asks for.
#[derive(Clone, Debug, Default)]
pub struct UserQuery {
    pub q: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub hobby: Option<String>,
    /// (lat, lon, radius km)
    pub near: Option<(f64, f64, f64)>,
    pub limit: usize,
    pub offset: usize,
}

/// One page of users.
#[derive(Clone, Debug, Serialize)]
pub struct UserResults {
    pub total: u64,
    pub users: Vec<Profile>,
}

/// `|` alternatives one user search may have; each is a prefix search over three fields.
pub const MAX_ALTERNATIVES: usize = 5;

impl UserQuery {
    /// Refuses a text with more than [`MAX_ALTERNATIVES`] `|` alternatives (400 `invalid_query`).
    pub fn check(&self) -> Result<()> {
        let n = self.q.as_deref().map_or(0, |q| {
            q.split('|').filter(|alt| !terms(alt).is_empty()).count()
        });
        if n > MAX_ALTERNATIVES {
            return Err(Error::InvalidQuery(format!(
                "a search may have at most {MAX_ALTERNATIVES} alternatives separated by |; this one has {n}"
            )));
        }
        Ok(())
    }

    /// A text query with no searchable word in it (only punctuation) finds nobody.
    pub fn matches_nothing(&self) -> bool {
        self.q
            .as_deref()
            .is_some_and(|q| !q.trim().is_empty() && terms(q).is_empty())
    }

    /// The RediSearch query string.
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(q) = self.q.as_deref() {
            // `|` separates alternatives (seed 003's "Simon or Wasim"); each is escaped on its own.
            let alternatives: Vec<String> = q
                .split('|')
                .filter_map(|alt| {
                    let words = terms(alt);
                    if words.is_empty() {
                        return None;
                    }
                    let text: Vec<String> = words
                        .iter()
                        .map(|w| {
                            if w.chars().count() >= 2 {
                                format!("{w}*")
                            } else {
                                w.clone()
                            }
                        })
                        .collect();
                    let name = alt.trim().to_lowercase();
                    // RediSearch 1.x refuses a stopword as a whole tag value (a syntax error).
                    Some(if STOPWORDS.contains(&name.as_str()) {
                        format!("(@firstname|lastname:({}))", text.join(" "))
                    } else {
                        format!(
                            "(@firstname|lastname:({})) | (@username:{{{}}})",
                            text.join(" "),
                            escape(&name)
                        )
                    })
                })
                .collect();
            if !alternatives.is_empty() {
                parts.push(format!("({})", alternatives.join(" | ")));
            }
        }
        for (field, value) in [
            ("city", &self.city),
            ("country", &self.country),
            ("hobbies", &self.hobby),
        ] {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                parts.push(format!("@{field}:{{{}}}", escape(&v.to_lowercase())));
            }
        }
        if let Some((lat, lon, km)) = self.near {
            parts.push(format!("@location:[{lon} {lat} {km} km]"));
        }
        if parts.is_empty() {
            "*".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// Whether the module refused a query as a syntax error. It answers `Syntax error at offset …`,
/// which the Redis client reads as an error of code `Syntax` (and its text no longer says
/// `Syntax error`), so both forms are checked.
fn is_syntax_error(e: &redis::RedisError) -> bool {
    e.code() == Some("Syntax") || {
        let text = e.to_string();
        text.contains("Syntax error") || text.contains("\"Syntax\": error")
    }
}

/// Documents of a search answer: key and fields.
pub type Docs = Vec<(String, HashMap<String, String>)>;

/// Parses an FT.SEARCH answer: total, then key and field list pairs.
pub fn parse_search(v: redis::Value) -> (u64, Docs) {
    use redis::Value;
    let Value::Array(items) = v else {
        return (0, Vec::new());
    };
    let mut it = items.into_iter();
    let total = match it.next() {
        Some(Value::Int(n)) => n.max(0) as u64,
        _ => 0,
    };
    let mut docs = Vec::new();
    while let Some(key) = it.next() {
        let key = match key {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            Value::SimpleString(s) => s,
            _ => continue,
        };
        let fields = match it.next() {
            Some(v @ Value::Array(_)) => super::flatten_pairs(v).into_iter().collect(),
            _ => HashMap::new(),
        };
        docs.push((key, fields));
    }
    (total, docs)
}

impl Store {
    /// Runs FT.SEARCH; `SearchUnavailable` without the module.
    pub async fn ft_search(
        &self,
        index: &str,
        query: &str,
        extra: &[&str],
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Docs)> {
        if self.search.is_none() {
            return Err(Error::SearchUnavailable);
        }
        // The module reads a query as a C string: a NUL (escaped or not) cuts it, and 1.x then
        // answers with an error text that is not UTF-8, which the client cannot read (the
        // connection, shared with every other request, is lost with it). Such a query finds
        // nothing, without being sent.
        if query.contains('\0') {
            return Ok((0, Vec::new()));
        }
        let v: redis::RedisResult<(u64, Docs)> = if self.is_cluster() {
            self.ft_search_sharded(index, query, extra, offset, limit)
                .await
        } else {
            let mut conn = self.conn().await?;
            redis::cmd("FT.SEARCH")
                .arg(index)
                .arg(query)
                .arg(extra)
                .arg("LIMIT")
                .arg(offset)
                .arg(limit)
                .query_async(&mut conn)
                .await
                .map(parse_search)
        };
        match v {
            Ok(v) => Ok(v),
            // User text is escaped, so a refused query means a value the module cannot search
            // for (1.x and stopword tags): it finds nothing rather than failing the request.
            Err(e) if is_syntax_error(&e) => {
                log::debug!("search refused `{query}`: {e}");
                Ok((0, Vec::new()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Searches users by name, city, country, hobby and distance.
    pub async fn search_users(&self, q: &UserQuery) -> Result<UserResults> {
        q.check()?;
        if self.search.is_none() {
            return Err(Error::SearchUnavailable);
        }
        if q.matches_nothing() {
            return Ok(UserResults {
                total: 0,
                users: Vec::new(),
            });
        }
        let (total, docs) = self
            .ft_search(keys::IDX_USERS, &q.to_query(), &[], q.offset, q.limit)
            .await?;
        let mut users = Vec::with_capacity(docs.len());
        for (key, fields) in docs {
            let username = key
                .strip_prefix(keys::USER_PREFIX)
                .unwrap_or(&key)
                .to_string();
            let mut p = profile_from_hash(&username, &fields);
            if p.uuid.is_empty() {
                p.uuid = self.ensure_uuid(&username).await?;
            }
            users.push(p);
        }
        Ok(UserResults { total, users })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped() {
        assert_eq!(escape("a-b"), "a\\-b");
        assert_eq!(escape("@x:{y}|*"), "\\@x\\:\\{y\\}\\|\\*");
        assert_eq!(terms("hello, -world* (x)"), vec!["hello", "world", "x"]);
    }

    #[test]
    fn user_queries_combine_clauses() {
        let q = UserQuery {
            q: Some("Simon".into()),
            city: Some("Nottingham".into()),
            ..Default::default()
        };
        assert_eq!(
            q.to_query(),
            "((@firstname|lastname:(Simon*)) | (@username:{simon})) @city:{nottingham}"
        );
        assert_eq!(UserQuery::default().to_query(), "*");
        let near = UserQuery {
            near: Some((51.5, -0.1, 10.0)),
            ..Default::default()
        };
        assert_eq!(near.to_query(), "@location:[-0.1 51.5 10 km]");
    }
}

/// What a message search asks for.
#[derive(Clone, Debug, Default)]
pub struct MessageQuery {
    pub q: Option<String>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// One page of messages found.
#[derive(Clone, Debug, Serialize)]
pub struct MessageResults {
    pub total: u64,
    pub messages: Vec<crate::protocol::ChatEvent>,
}

impl MessageQuery {
    /// The RediSearch query over `channels` (already limited to what the reader may read), or
    /// `None` when nothing could match.
    pub fn to_query(&self, channels: &[String]) -> Option<String> {
        if channels.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        let words = self.q.as_deref().map(terms).unwrap_or_default();
        let q_given = self.q.as_deref().is_some_and(|q| !q.trim().is_empty());
        if q_given && words.is_empty() {
            return None;
        }
        if !words.is_empty() {
            parts.push(format!("@message:({})", words.join(" ")));
        }
        if let Some(u) = self
            .username
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            parts.push(format!("@username:{{{}}}", escape(&u.to_lowercase())));
        }
        if parts.is_empty() {
            return None;
        }
        parts.push(channel_filter(channels));
        Some(parts.join(" "))
    }
}

impl Store {
    /// The channels a user may read: every public channel and their own DMs, group
    /// conversations and private channels (checked against each one's members).
    pub async fn readable_channels(&self, username: &str) -> Result<Vec<String>> {
        let mut all = self.public_channels().await?;
        let mine = self.memberships(username).await?;
        let private = mine.into_iter().filter(|c| !all.contains(c)).collect();
        all.extend(
            self.listed(username, private)
                .await?
                .into_iter()
                .map(|(c, _)| c),
        );
        Ok(all)
    }

    /// Full-text search over messages the reader may read; another pair's DMs are never
    /// searched, so they are neither found nor counted.
    pub async fn search_messages(&self, reader: &str, q: &MessageQuery) -> Result<MessageResults> {
        if self.search.is_none() {
            return Err(Error::SearchUnavailable);
        }
        let channels = match q.channel.as_deref().filter(|c| !c.is_empty()) {
            Some(list) => {
                let names = channel_list(list);
                for c in &names {
                    self.require_read(reader, c).await?;
                }
                names
            }
            None => self.readable_channels(reader).await?,
        };
        let Some(query) = q.to_query(&channels) else {
            return Ok(MessageResults {
                total: 0,
                messages: Vec::new(),
            });
        };
        let (total, docs) = self
            .ft_search(keys::messages_index(), &query, &[], q.offset, q.limit)
            .await?;
        let messages = docs
            .into_iter()
            .map(|(key, fields)| {
                super::insights::event_from_hash(keys::id_of_message_key(&key), &fields)
            })
            .collect();
        Ok(MessageResults { total, messages })
    }
}
