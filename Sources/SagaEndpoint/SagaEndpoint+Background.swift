import AMQPTransport
import Foundation

// The endpoint's two background loops beside the batch loop: feeding due saga timeouts and delayed retries
// into it, and the housekeeping that re-sends what a crash left unconfirmed and keeps the tables bounded.
extension SagaEndpoint {
    /// Feeds saga timeouts and delayed retries into the pipeline when they fall due, also those that
    /// fell due while the endpoint was down.
    /// A failing read (a corrupt page, an I/O error) is logged once, then at most every 30 s with how often it
    /// failed meanwhile: polled every 200 ms, it wrote five warnings a second for as long as it lasted.
    func pollDueTimeouts(store: StoreWorker, work: WorkQueue, inFlight: InFlightSet,
                         warningInterval: Duration = .seconds(30), maximumInFlight: Int = 500) async {
        var failing: (lastWarning: ContinuousClock.Instant, failuresSince: Int)?
        // A graceful shutdown finishes the rows already handed on and takes no more: they stay due for the
        // next start. Rows pushed after the batch loop was told to finish were still taken (it ends only
        // once its queue is empty), so a backlog of due rows was drained to the end before the process
        // exited: 100,000 overdue rows held a SIGTERM for 20 s.
        while !Task.isCancelled, !isStopping {
            do {
                // At most `maximumInFlight` due rows handed on and not finished: a backlog of overdue rows
                // (after downtime) waits in the table, not in memory. Rows held after an unconfirmed
                // error-queue copy are only ids waiting out their hold: counted in, 500 of them (the error
                // queue missing) took all the room, and a timeout behind them never fired meanwhile. They
                // have a bound of their own (each poll reads their ids to skip them).
                let (handedOn, held) = inFlight.counts
                let room = min(maximumInFlight - handedOn, maximumInFlight * 10 - held - handedOn)
                guard room > 0 else {
                    try? await Task.sleep(for: configuration.timeoutPollInterval)
                    continue
                }
                let due = try await store.dueTimeouts(now: Date(), limit: room, skipping: inFlight)
                if isStopping { break }
                if failing != nil {
                    failing = nil
                    logger.notice("due timeouts can be read again")
                }
                for row in due {
                    let isNew = inFlight.insert(row.timeoutId)
                    if isNew { work.push(.due(row)) }
                }
            } catch {
                let now = ContinuousClock.now
                if let last = failing, now - last.lastWarning < warningInterval {
                    failing?.failuresSince += 1
                } else {
                    logger.warning("could not read due timeouts; trying again", metadata: [
                        "error": "\(error)", "failures_since_last_warning": "\(failing?.failuresSince ?? 0)"])
                    failing = (now, 0)
                }
            }
            try? await Task.sleep(for: configuration.timeoutPollInterval)
        }
    }

    /// Publishes outbox rows left unconfirmed (the message that produced them may never be redelivered: a
    /// timeout; OutboxRedispatch.swift), keeps the inbox and outbox bounded, and refreshes the backlog gauges.
    /// `wallClock` dates what is stored and compared with stored dates (tests step it as NTP would).
    func housekeeping(store: StoreWorker, backlogReader: BacklogReader, publisher: AMQPConnection,
                      metrics: EndpointMetrics, wallClock: () -> Date = { Date() }) async {
        // When the last purge ran, on the monotonic clock: on the wall clock, a clock stepped back by an hour
        // held every purge back for that hour. Nil: none yet, the first one runs at once.
        var lastPurge: ContinuousClock.Instant?
        var cursor = OutboxCursor()
        var returned = ReturnedRows()
        while !Task.isCancelled {
            await health.refreshBacklogs(backlogReader, logger: logger)
            var backlogMoves = false
            do {
                let pass = try await redispatchOutbox(store: store, publisher: publisher, metrics: metrics,
                                                      cursor: cursor, returned: &returned, wallClock: wallClock)
                cursor = pass.next
                backlogMoves = pass.fullAndConfirmed
                let tick = ContinuousClock.now
                if lastPurge.map({ tick - $0 >= configuration.housekeepingInterval }) ?? true {
                    let now = wallClock()
                    let purged = try await store.purge(
                        inboxBefore: now.addingTimeInterval(-configuration.deduplicationWindow.timeInterval),
                        outboxBefore: now.addingTimeInterval(-configuration.outboxRetention.timeInterval))
                    lastPurge = tick
                    if purged.inbox + purged.outbox > 0 {
                        logger.debug("purged old inbox and outbox rows", metadata: [
                            "inbox": "\(purged.inbox)", "outbox": "\(purged.outbox)"])
                    }
                }
            } catch {
                logger.warning("housekeeping failed", metadata: ["error": "\(error)"])
            }
            // A full page of re-sends all confirmed: the next page goes at once (see `OutboxPass`).
            if backlogMoves { continue }
            try? await Task.sleep(for: max(.milliseconds(50), min(.seconds(2), configuration.housekeepingInterval,
                                                                  configuration.outboxRedispatchDelay)))
        }
    }
}
