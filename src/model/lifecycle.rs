//! The experiment lifecycle: statuses and the operations each one allows.
//!
//! | from \ operation | update | ramp | start | stop | complete | archive | delete | enrol / track |
//! |---|---|---|---|---|---|---|---|---|
//! | draft | ✓ | ✓ | → running | ✗ | ✗ | → archived | ✓ | ✗ |
//! | running | ✗ | ✓ | ✗ | → stopped | → completed | ✗ | ✗ | ✓ |
//! | stopped | ✗ | ✗ | ✗ | ✗ | → completed | → archived | ✓ | ✗ |
//! | completed | ✗ | ✗ | ✗ | ✗ | ✗ | → archived | ✓ | ✗ |
//! | archived | ✗ | ✗ | ✗ | ✗ | ✗ | ✗ | ✓ | ✗ |

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an experiment is in its life.
///
/// Deliberately exhaustive: the table above is the whole lifecycle, and code that matches on a
/// status should be told by the compiler when that changes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Being designed: editable, serves nothing, enrols nobody.
    #[default]
    Draft,
    /// Live: enrols units and accepts events. Only its traffic may change (a ramp).
    Running,
    /// Ended early. With a winner it serves the winner to everyone (a rollout).
    Stopped,
    /// Ended and concluded. With a winner it keeps serving the winner.
    Completed,
    /// Put away: hidden from `list` unless asked for, serves nothing.
    Archived,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [
        Status::Draft,
        Status::Running,
        Status::Stopped,
        Status::Completed,
        Status::Archived,
    ];

    /// The status's name as the APIs write it (`draft`, `running`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Completed => "completed",
            Status::Archived => "archived",
        }
    }

    /// The status `operation` leads to from this one, or `None` when the table forbids it.
    /// Operations that do not change the status (update, ramp, delete, track) return `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use abkit::{Operation, Status};
    ///
    /// assert_eq!(Status::Draft.apply(Operation::Start), Some(Status::Running));
    /// assert_eq!(Status::Running.apply(Operation::Delete), None);
    /// assert_eq!(Status::Running.apply(Operation::Ramp), Some(Status::Running));
    /// ```
    pub const fn apply(self, operation: Operation) -> Option<Status> {
        use Operation as O;
        use Status as S;
        match (self, operation) {
            (S::Draft, O::Update | O::Ramp | O::Delete) => Some(self),
            (S::Draft, O::Start) => Some(S::Running),
            (S::Draft | S::Stopped | S::Completed, O::Archive) => Some(S::Archived),
            (S::Running, O::Ramp | O::Track) => Some(self),
            (S::Running, O::Stop) => Some(S::Stopped),
            (S::Running | S::Stopped, O::Complete) => Some(S::Completed),
            (S::Stopped | S::Completed | S::Archived, O::Delete) => Some(self),
            _ => None,
        }
    }

    /// Whether `operation` is allowed from this status.
    pub const fn allows(self, operation: Operation) -> bool {
        self.apply(operation).is_some()
    }

    /// Whether the experiment has ended (stopped or completed): a winner, if any, is served.
    pub const fn is_concluded(self) -> bool {
        matches!(self, Status::Stopped | Status::Completed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = crate::model::validation::ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                crate::model::validation::ValidationError::field(
                    "status",
                    format!(
                        "unknown status {s:?}, expected one of draft, running, stopped, completed, archived"
                    ),
                )
            })
    }
}

/// Something done to an experiment, checked against its [`Status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// A partial update of its definition.
    Update,
    /// A change of its traffic fraction alone.
    Ramp,
    /// Start enrolling.
    Start,
    /// End early, optionally with a winner.
    Stop,
    /// Conclude.
    Complete,
    /// Put away.
    Archive,
    /// Remove, with its events.
    Delete,
    /// Enrol a unit or record an event.
    Track,
}

impl Operation {
    /// The operation's name, as error messages write it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Update => "update",
            Operation::Ramp => "ramp",
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Complete => "complete",
            Operation::Archive => "archive",
            Operation::Delete => "delete",
            Operation::Track => "track events for",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{Operation as O, Status as S};

    /// The lifecycle table of docs/DESIGN.md, written out cell by cell.
    #[test]
    fn table_cell_by_cell() {
        let ops = [
            O::Update,
            O::Ramp,
            O::Start,
            O::Stop,
            O::Complete,
            O::Archive,
            O::Delete,
            O::Track,
        ];
        let expected: [(S, [Option<S>; 8]); 5] = [
            (
                S::Draft,
                [
                    Some(S::Draft),
                    Some(S::Draft),
                    Some(S::Running),
                    None,
                    None,
                    Some(S::Archived),
                    Some(S::Draft),
                    None,
                ],
            ),
            (
                S::Running,
                [
                    None,
                    Some(S::Running),
                    None,
                    Some(S::Stopped),
                    Some(S::Completed),
                    None,
                    None,
                    Some(S::Running),
                ],
            ),
            (
                S::Stopped,
                [
                    None,
                    None,
                    None,
                    None,
                    Some(S::Completed),
                    Some(S::Archived),
                    Some(S::Stopped),
                    None,
                ],
            ),
            (
                S::Completed,
                [
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(S::Archived),
                    Some(S::Completed),
                    None,
                ],
            ),
            (
                S::Archived,
                [None, None, None, None, None, None, Some(S::Archived), None],
            ),
        ];
        for (from, row) in expected {
            for (op, want) in ops.iter().zip(row) {
                assert_eq!(from.apply(*op), want, "{from} / {op}");
            }
        }
    }

    #[test]
    fn status_names_round_trip() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!(
            "paused"
                .parse::<S>()
                .unwrap_err()
                .to_string()
                .contains("\"paused\"")
        );
    }
}
