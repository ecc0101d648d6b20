/// Where housekeeping is in its round over the unconfirmed outbox rows (`claimUnconfirmedOutbox`). A round
/// covers the rows there were when it started, a page per pass, oldest first; rows written meanwhile wait
/// for the next round, which starts from the oldest again. So each row is sent again at least once a
/// round, however fast new unconfirmed rows come.
struct OutboxCursor: Sendable, Equatable {
    /// The row after which the next pass reads (0: a new round).
    var after: Int64 = 0
    /// The round's last row: the newest row when it started (unused while `after` is 0).
    var through: Int64 = 0
}
