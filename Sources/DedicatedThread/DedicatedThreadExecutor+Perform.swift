extension DedicatedThreadExecutor {
    /// Runs `body` on this executor's thread and returns its result. For blocking set-up work, such as
    /// opening and migrating a database, which must stay off Swift's cooperative pool as much as the
    /// work the executor's actor does later (a migration of a large store takes seconds).
    public func perform<T: Sendable>(_ body: @Sendable () throws -> T) async throws -> T {
        try await ThreadHop(executor: self).run(body)
    }
}

/// An actor on the executor's thread: calling it moves the work there.
private actor ThreadHop {
    let executor: DedicatedThreadExecutor

    init(executor: DedicatedThreadExecutor) {
        self.executor = executor
    }

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    func run<T: Sendable>(_ body: @Sendable () throws -> T) throws -> T {
        try body()
    }
}

extension DedicatedThreadExecutor {
    /// Starts an executor named `name` and runs `make` on its thread: the set-up of whatever will own it
    /// (an actor opening a database). If `make` throws, the thread ends (an actor whose init throws never
    /// runs the `deinit` that would have ended it).
    public static func starting<T: Sendable>(
        name: String, _ make: @Sendable (DedicatedThreadExecutor) throws -> T
    ) async throws -> T {
        let executor = DedicatedThreadExecutor(name: name)
        do {
            return try await executor.perform { try make(executor) }
        } catch {
            executor.shutdown()
            throw error
        }
    }
}
