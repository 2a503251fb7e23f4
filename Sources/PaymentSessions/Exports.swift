// The embedded store's users write `import PaymentSessions` and get the model with it.
@_exported import PaymentSessionsCore
@_exported import StrictJSON
