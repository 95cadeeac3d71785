/*
 * What Wine 8 (Debian 12's) lacks and Windows 10 and later have: bcryptprimitives.dll's
 * ProcessPrng, which Rust's std imports for its random numbers (HashMap seeds). Built with
 * MinGW-w64 into each test prefix's system32; it draws from RtlGenRandom, which Wine has.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG n = length > 0x10000000 ? 0x10000000 : (ULONG)length;
    if (!SystemFunction036(data, n)) return FALSE;
    data += n;
    length -= n;
  }
  return TRUE;
}
