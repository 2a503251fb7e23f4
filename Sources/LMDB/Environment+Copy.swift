import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Online copies of an environment.
extension Environment {
    /// Writes a consistent copy of the environment into directory `destination` (created
    /// `0700` with its parents when missing), which must hold no `data.mdb`, while other
    /// threads and processes go on writing.
    /// The copy's `data.mdb` is created `0600`, whatever the umask, and is flushed to disk
    /// before this returns; a failed copy leaves no `data.mdb` behind.
    ///
    /// - Parameters:
    ///   - destination: The copy's directory.
    ///   - compact: `false` (the default) copies the file's pages as of one snapshot, read
    ///     with `pread` from the file, never through the map: the copy holds back neither
    ///     writers nor map growth, however long it takes. Free pages are copied too. `true`
    ///     uses liblmdb's compacting copy (`mdb_env_copyfd2` with `MDB_CP_COMPACT`), which
    ///     omits free pages and renumbers the rest but reads the map for its whole
    ///     duration, so a map growth in this process waits for it (and fails with
    ///     ``LMDBError/Code/mapFull`` after ``Options/growthTimeout``).
    public func copy(to destination: String, compact: Bool = false) throws {
        let operation = "copy(\(path) -> \(destination))"
        if !compact { try refuseWhileMapIsPinned("a copy", operation: "copy(\(path))") }
        try Environment.makeDirectories(destination, operation: "mkdir(\(destination))")
        let file = destination + "/data.mdb"
        let descriptor = openFile(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if descriptor < 0 { throw LMDBError(.system(errno: errno), operation: "open(\(file))") }
        var complete = false
        defer {
            closeFile(descriptor)
            if !complete { unlink(file) }
        }
        if fchmod(descriptor, 0o600) != 0 { throw LMDBError(.system(errno: errno), operation: "fchmod(\(file))") }
        if compact {
            try gate.enter()
            defer { gate.leave() }
            try check(mdb_env_copyfd2(handle, descriptor, UInt32(MDB_CP_COMPACT)), "mdb_env_copyfd2(\(operation))")
        } else {
            try copySnapshot(into: descriptor, operation: operation)
        }
        if fsync(descriptor) != 0 { throw LMDBError(.system(errno: errno), operation: "fsync(\(file))") }
        complete = true
        let directory = openFile(destination, O_RDONLY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            closeFile(directory)
        }
    }

    /// Copies the pages of one snapshot: its meta page (as both meta pages of the copy),
    /// then pages 2 through its last page.
    ///
    /// Why this is consistent without the map: a live read transaction keeps every page
    /// its snapshot references from being reused, so those pages read the same through
    /// the file for as long as it lives. Pages it does not reference (free ones, or ones
    /// a writer is filling now) may be copied half-written; nothing in the copy points
    /// at them.
    private func copySnapshot(into destination: Int32, operation: String) throws {
        // A writer overwrites the older meta page at each commit, so the snapshot's may be
        // gone by the time it is read (two commits in between): take a newer snapshot.
        for _ in 0..<1000 {
            // The snapshot's meta page is read right after the snapshot is taken, as liblmdb's
            // own readers read theirs, and until two reads agree: the page is rewritten only
            // two commits later, with one `pwrite` that a concurrent read could see half done.
            // (Holding the writer lock instead, as `mdb_env_copyfd` does, would make a backup
            // wait for writers.)
            let txn = try begin(readOnly: true, pooled: false)
            let snapshot = Int(mdb_txn_id(txn))
            // An idle read transaction holds no pointer into the map.
            gate.leave()
            defer { mdb_txn_abort(txn) }
            var meta = try stableMetaPage(index: snapshot & 1)
            guard meta.transactionID == snapshot else { continue }
            for index in 0..<2 {
                // The page header's first field is the page number.
                withUnsafeBytes(of: UInt64(index).littleEndian) { meta.bytes.replaceSubrange(0..<8, with: $0) }
                try meta.bytes.withUnsafeBytes { try writeFully(destination, $0, operation: "write(\(operation))") }
            }
            let end = (meta.lastPage + 1) * pageSize
            var buffer = [UInt8](repeating: 0, count: max(1, (1 << 20) / pageSize) * pageSize)
            var offset = 2 * pageSize
            while offset < end {
                let count = min(buffer.count, end - offset)
                try buffer.withUnsafeMutableBytes { all in
                    let chunk = UnsafeMutableRawBufferPointer(rebasing: all[0..<count])
                    let got = try readFully(fileDescriptor, into: chunk, at: offset, operation: "pread(\(operation))")
                    guard got == count else {
                        throw LMDBError(.corrupted, operation: "pread(\(operation)): data.mdb ends before page \(meta.lastPage)")
                    }
                    try writeFully(destination, UnsafeRawBufferPointer(chunk), operation: "write(\(operation))")
                }
                offset += count
            }
            return
        }
        throw LMDBError(.badTransaction, operation: "\(operation): no stable snapshot after 1000 attempts")
    }

    /// Meta page `index`, read until two reads in a row agree.
    private func stableMetaPage(index: Int) throws -> MetaPage {
        var previous = try MetaPage.read(index: index, descriptor: fileDescriptor, pageSize: pageSize, path: path)
        for _ in 0..<100 {
            let again = try MetaPage.read(index: index, descriptor: fileDescriptor, pageSize: pageSize, path: path)
            if again.bytes == previous.bytes { return again }
            previous = again
        }
        throw LMDBError(.badTransaction, operation: "copy(\(path)): meta page \(index) kept changing")
    }
}

// File scope, where `open` and `close` name the C functions rather than `Environment.open`.
private func openFile(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 { open(path, flags, mode) }
private func closeFile(_ descriptor: Int32) { close(descriptor) }
