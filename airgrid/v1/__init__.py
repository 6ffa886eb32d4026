# Generated event classes (protoc output from proto/airgrid/v1). Do not edit: run `make proto`.
