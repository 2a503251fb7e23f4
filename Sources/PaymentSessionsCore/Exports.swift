// `data` is a JSON object: the core's users get the JSON value type with the model.
@_exported import StrictJSON
