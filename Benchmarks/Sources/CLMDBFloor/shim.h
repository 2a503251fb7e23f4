#ifndef CLMDB_FLOOR_SHIM_H
#define CLMDB_FLOOR_SHIM_H
// The system liblmdb (Debian: liblmdb-dev, pkg-config name `lmdb`), for the raw floor:
// the library's own CLMDB module is internal to it.
#include <lmdb.h>
#endif
