import CLMDB
import Logging
import Metrics

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Growing the map, and adopting a map that another process grew.
///
/// liblmdb's `mdb_env_set_mapsize` unmaps the old map before it maps the new one, and
/// when the new `mmap` fails (an address-space limit such as `ulimit -v`, or a size past
/// what the kernel's address space holds) it leaves the environment with no map at all:
/// the next transaction reads a dead meta page and the process dies with `SIGSEGV`. So
/// each remap first reserves the new size of address space (`PROT_NONE`, no memory
/// committed) while the old map is still there; when that fails, the growth is refused
/// with a typed error and the store goes on at its old size. Only if the real remap still
/// fails (another thread took the address space in between) is the environment marked
/// unusable: every later call throws ``LMDBError/Code/panic`` instead of touching the map.
extension Environment {
    /// Doubles the map, up to `maxMapSize`; throws `mapFull` when already there, or when
    /// the process has no address space for the larger map.
    func growMap() throws {
        let operation = "mdb_env_set_mapsize(\(path))"
        _ = try gate.whenQuiescent(timeout: options.growthTimeout, operation: operation) {
            let current = unguardedInfo().mapSize
            guard current < options.maxMapSize else {
                throw LMDBError(.mapFull, operation: "\(operation): map is \(current) bytes, maxMapSize reached")
            }
            let grown = min(max(current * 2, current + (1 << 20)), options.maxMapSize)
            try remap(to: grown, refusal: .mapFull, operation: operation)
            logger.notice(
                "grew the map", metadata: ["lmdb.from": .stringConvertible(current), "lmdb.to": .stringConvertible(grown)])
            // Rare enough to make the counter each time (a no-op without a metrics backend).
            Counter(label: "lmdb_map_growths_total").increment()
        }
    }

    /// Another process grew the map past this process's size (`MDB_MAP_RESIZED`): adopt
    /// the size its meta page records, once no transaction of this process is live.
    func adoptGrownMap() throws {
        let operation = "mdb_env_set_mapsize(\(path), adopt)"
        _ = try gate.whenQuiescent(timeout: options.growthTimeout, operation: operation) {
            let meta = try MetaPage.newest(descriptor: fileDescriptor, pageSize: pageSize, path: path)
            let size = max(meta.mapSize, (meta.lastPage + 1) * pageSize)
            try remap(to: size, refusal: .system(errno: ENOMEM), operation: operation)
            logger.notice("adopted the map size another process set", metadata: ["lmdb.to": .stringConvertible(size)])
        }
    }

    /// Remaps to `size` bytes; the caller holds the gate quiescent.
    ///
    /// - Throws: `refusal` when the address space has no room for the new map (nothing
    ///   changed); ``MapLost`` when liblmdb failed after unmapping the old map.
    private func remap(to size: Int, refusal: LMDBError.Code, operation: String) throws {
        let reservation = mmap(nil, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if reservation == MAP_FAILED {
            let code = errno
            logger.warning(
                "no address space to grow the map; it stays at its size",
                metadata: ["lmdb.to": .stringConvertible(size), "lmdb.errno": .stringConvertible(code)])
            throw LMDBError(
                refusal,
                operation: "\(operation): no address space for a \(size)-byte map (\(String(cString: strerror(code)))); "
                    + "the map stays at its current size")
        }
        munmap(reservation, size)
        let rc = mdb_env_set_mapsize(handle, size)
        if rc != MDB_SUCCESS {
            logger.critical(
                "the map was lost in a remap; the environment is unusable until reopened",
                metadata: ["lmdb.to": .stringConvertible(size), "lmdb.code": .stringConvertible(rc)])
            throw MapLost(
                error: LMDBError(
                    .panic,
                    operation: "\(operation): remapping to \(size) bytes failed (\(LMDBError.Code(lmdbReturnCode: rc).message)) "
                        + "after the old map was released; this environment is unusable, close and reopen it"))
        }
    }
}
