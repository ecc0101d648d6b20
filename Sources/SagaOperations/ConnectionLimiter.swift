import Logging
import NIOCore
import Prometheus

/// Bounds the client connections the operations server holds open at once. Each holds a file
/// descriptor, which the endpoint also needs for its AMQP sockets and SQLite, and the idle timeout alone
/// lets a misbehaving scraper or a port scan open them faster than they expire. A connection over the
/// bound is closed as soon as it is accepted, before it is set up or read; the open ones keep working, and
/// a new one is accepted again once one of them closes.
///
/// It sits on the server channel, ahead of NIO's accept handler, so it sees every accepted child channel
/// first (as swift-nio-extras' quiescing helper does). Its state is touched on the server channel's event
/// loop only: the children's closes are hopped there.
final class ConnectionLimiter: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    /// A refusal is logged at most this often (with the number refused since the last line): a port scan
    /// or a scraper in a loop would otherwise write a line per connection.
    static let logInterval = TimeAmount.seconds(30)

    private let limit: Int
    private let logger: Logger
    private let refusedCounter: Counter
    private var open = 0
    private var lastLogged: NIODeadline?
    private var refusedSinceLog = 0

    init(limit: Int, logger: Logger, refusedCounter: Counter) {
        self.limit = limit
        self.logger = logger
        self.refusedCounter = refusedCounter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        guard open < limit else {
            // Not registered yet: closing it releases the descriptor without the pipeline ever running.
            child.close(promise: nil)
            refused()
            return
        }
        open += 1
        let limiter = NIOLoopBound(self, eventLoop: context.eventLoop)
        child.closeFuture.hop(to: context.eventLoop).whenComplete { _ in limiter.value.open -= 1 }
        context.fireChannelRead(data)
    }

    private func refused() {
        refusedCounter.increment()
        refusedSinceLog += 1
        let now = NIODeadline.now()
        if let lastLogged, now - lastLogged < Self.logInterval { return }
        // `refused`: since the previous such line.
        logger.warning("operations HTTP server at its limit of open connections: closing new ones at once",
                       metadata: ["limit": "\(limit)", "refused": "\(refusedSinceLog)"])
        lastLogged = now
        refusedSinceLog = 0
    }
}
