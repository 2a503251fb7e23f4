#!/usr/bin/env bash
# Builds the libFuzzer target (coverage-guided, with AddressSanitizer) and runs it.
#
#   Fuzz/run.sh                      # $FUZZ_SECONDS seconds (default 60)
#   Fuzz/run.sh -max_total_time=3600 # any libFuzzer flags instead
#
# The modules are compiled here with swiftc rather than SwiftPM, so that every line of the
# JSON, core, LMDB and store modules is instrumented and no executable's `main` clashes with
# libFuzzer's.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.build/fuzz
mkdir -p "$out/corpus"
# The library's settings (Package.swift): its imports are written for them.
flags=(-swift-version 6 -O -g -sanitize=fuzzer,address -parse-as-library -package-name payment_sessions
    -enable-upcoming-feature ExistentialAny -enable-upcoming-feature InternalImportsByDefault
    -enable-upcoming-feature MemberImportVisibility -I Sources/CLMDB -I "$out")

# The dependencies the modules import (swift-log, swift-metrics, swift-distributed-tracing),
# from the package's own checkouts, uninstrumented: the fuzzer explores our code, not theirs.
swift package resolve >/dev/null
checkouts=.build/checkouts
dependency() { # module-name package-name source-directory
    swiftc -swift-version 6 -O -parse-as-library -package-name "$2" -module-name "$1" -I "$out" \
        -emit-module -emit-module-path "$out/$1.swiftmodule" -emit-library -static -o "$out/lib$1.a" \
        $(find "$3" -name '*.swift')
}
dependency Logging swift_log $checkouts/swift-log/Sources/Logging
dependency CoreMetrics swift_metrics $checkouts/swift-metrics/Sources/CoreMetrics
dependency Metrics swift_metrics $checkouts/swift-metrics/Sources/Metrics
dependency Instrumentation swift_distributed_tracing $checkouts/swift-distributed-tracing/Sources/Instrumentation
dependency ServiceContextModule swift_distributed_tracing $checkouts/swift-distributed-tracing/Sources/ServiceContextModule
dependency Tracing swift_distributed_tracing $checkouts/swift-distributed-tracing/Sources/Tracing
swiftc "${flags[@]}" -module-name LMDB -emit-module -emit-module-path "$out/LMDB.swiftmodule" \
    -emit-library -static -o "$out/libLMDB.a" Sources/LMDB/*.swift
swiftc "${flags[@]}" -module-name StrictJSON -emit-module -emit-module-path "$out/StrictJSON.swiftmodule" \
    -emit-library -static -o "$out/libStrictJSON.a" Sources/StrictJSON/*.swift
swiftc "${flags[@]}" -module-name PaymentSessionsCore -emit-module -emit-module-path "$out/PaymentSessionsCore.swiftmodule" \
    -emit-library -static -o "$out/libPaymentSessionsCore.a" $(find Sources/PaymentSessionsCore -name '*.swift')
swiftc "${flags[@]}" -module-name PaymentSessions -emit-module -emit-module-path "$out/PaymentSessions.swiftmodule" \
    -emit-library -static -o "$out/libPaymentSessions.a" $(find Sources/PaymentSessions -name '*.swift')
# Synchronization by name: the libraries import it internally, so the target's own objects do
# not ask for it.
swiftc "${flags[@]}" -module-name FuzzTarget -L "$out" -lPaymentSessions -lPaymentSessionsCore -lStrictJSON -lLMDB -lTracing -lServiceContextModule -lInstrumentation -lMetrics -lCoreMetrics -lLogging -llmdb \
    -lswiftSynchronization -o "$out/fuzz-target" Fuzz/FuzzTarget.swift

# Seeds: a valid export line and a valid record, so mutations start from real inputs.
cp Fuzz/seeds/* "$out/corpus/" 2>/dev/null || true
if [ $# -eq 0 ]; then set -- -max_total_time="${FUZZ_SECONDS:-60}"; fi
"$out/fuzz-target" "$out/corpus" "$@"
