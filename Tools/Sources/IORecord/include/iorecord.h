// iorecord: an LD_PRELOAD shim recording a process's writes and flushes to one file (see
// iorecord.c). A program under it marks acknowledgements with iorecord_mark, which it looks
// up with dlsym so that it runs unchanged without the shim.
#pragma once

void iorecord_mark(const char *text);
