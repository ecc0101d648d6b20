/// Overwrites the password of every URL among the process's arguments, where the kernel shows them to
/// every local user (`ps -ef`, `/proc/PID/cmdline`): `run --amqp-url amqp://ops:secret@rabbit/` showed the
/// password for as long as the endpoint ran. Each byte of it becomes `*` in place (the arguments' memory
/// cannot grow or shrink). Swift's `CommandLine.arguments` is a copy made at its first use, which is made
/// here first, so the commands still parse and use the real URL. From the exec to this overwrite the
/// password is visible for an instant: `AMQP_URL` or the config file keep it out of the arguments entirely.
/// Public, for every executable that takes a broker URL as an argument: `saga-endpoint` and `saga-bench`
/// (whose `--url` stayed in `ps` for the whole run), each calling it first thing.
public enum ArgumentPasswords {
    public static func hide() {
        _ = CommandLine.arguments
        hide(argc: Int(CommandLine.argc), argv: CommandLine.unsafeArgv)
    }

    /// The overwrite, on any argument vector. A process may be started with no arguments at all (`execve`
    /// with an empty vector, argc 0: some kernels allow it): `1..<argc` then trapped before the command ran.
    static func hide(argc: Int, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) {
        guard argc > 1 else { return }
        for index in 1..<argc {
            guard let pointer = argv[index] else { continue }
            let text = String(cString: pointer)
            guard text.contains("://") else { continue }
            let masked = Array(AMQPConfiguration.maskingPassword(text).utf8)
            // Same length by construction; checked, as a longer write would run past the argument.
            guard masked.count == text.utf8.count, masked != Array(text.utf8) else { continue }
            for (offset, byte) in masked.enumerated() { pointer[offset] = CChar(bitPattern: byte) }
        }
    }
}
