/// An error no retry can fix: a validation failure, a request the outside world refused for good. A
/// handler (saga or stateless) that throws one sends its message to the error queue at once, without the
/// immediate and delayed retries, with the error's type name as `x-error-type` (NServiceBus's
/// unrecoverable exceptions, MassTransit's `Ignore<T>`). Errors of types you do not own can be named in
/// `EndpointConfiguration.isUnrecoverable` instead.
public protocol UnrecoverableError: Error {}
