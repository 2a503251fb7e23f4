#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One of the two meta pages at the head of `data.mdb`, read from the file with `pread`
/// rather than through the map.
///
/// The map cannot always be used: adopting a map that another process grew must learn
/// the new size before remapping (to check that it fits), and an online backup copies
/// the file while another thread may remap it. Reading the file needs neither the map
/// nor the environment's gate.
///
/// The layout is liblmdb 0.9's on 64-bit systems (`MDB_page` header, then `MDB_meta`),
/// unchanged since 0.9.0: the page header is 16 bytes; the meta's magic is at 16, its
/// map size at 32, the free-page and main `MDB_db` records (48 bytes each) at 40 and 88,
/// the last used page at 136 and the transaction id at 144. The free-page database's
/// `md_pad` (at 40) holds the page size.
struct MetaPage {
    static let magic: UInt32 = 0xBEEF_C0DE
    static let headerBytes = 152

    /// The whole page, as stored.
    var bytes: [UInt8]
    var mapSize: Int { Int(load(UInt64.self, at: 32)) }
    var lastPage: Int { Int(load(UInt64.self, at: 136)) }
    var transactionID: Int { Int(load(UInt64.self, at: 144)) }
    var pageSize: Int { Int(load(UInt32.self, at: 40)) }

    private func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }

    /// The meta page `index` (0 or 1) of the file open as `descriptor`, whose pages are
    /// `pageSize` bytes.
    ///
    /// - Throws: ``LMDBError/Code/invalidFile`` when the page does not carry liblmdb's
    ///   magic; `.system(errno:)` when it cannot be read.
    static func read(index: Int, descriptor: Int32, pageSize: Int, path: String) throws -> MetaPage {
        var bytes = [UInt8](repeating: 0, count: pageSize)
        let operation = "pread(\(path)/data.mdb, meta page \(index))"
        let got = try bytes.withUnsafeMutableBytes { buffer in
            try readFully(descriptor, into: buffer, at: index * pageSize, operation: operation)
        }
        guard got == pageSize else { throw LMDBError(.invalidFile, operation: "\(operation): short read") }
        let page = MetaPage(bytes: bytes)
        guard page.load(UInt32.self, at: 16) == magic else {
            throw LMDBError(.invalidFile, operation: "\(operation): no meta page magic")
        }
        return page
    }

    /// The newer of the two meta pages: the one liblmdb itself would pick.
    static func newest(descriptor: Int32, pageSize: Int, path: String) throws -> MetaPage {
        let first = try read(index: 0, descriptor: descriptor, pageSize: pageSize, path: path)
        let second = try read(index: 1, descriptor: descriptor, pageSize: pageSize, path: path)
        return first.transactionID < second.transactionID ? second : first
    }
}

/// `pread` until `buffer` is full or the file ends; returns the bytes read.
func readFully(
    _ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int, operation: @autoclosure () -> String
) throws(LMDBError) -> Int {
    var done = 0
    while done < buffer.count {
        let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
        if n < 0 {
            if errno == EINTR { continue }
            throw LMDBError(.system(errno: errno), operation: operation())
        }
        if n == 0 { break }
        done += n
    }
    return done
}

/// `write` until all of `buffer` is written.
func writeFully(_ descriptor: Int32, _ buffer: UnsafeRawBufferPointer, operation: @autoclosure () -> String) throws(LMDBError) {
    var done = 0
    while done < buffer.count {
        let n = write(descriptor, buffer.baseAddress! + done, buffer.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw LMDBError(.system(errno: errno), operation: operation())
        }
        done += n
    }
}
