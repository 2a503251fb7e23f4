#ifndef CLMDB_SHIM_H
#define CLMDB_SHIM_H
// The system liblmdb (Debian: liblmdb-dev, pkg-config name `lmdb`).
#include <lmdb.h>
#endif
