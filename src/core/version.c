/* version.c - the library's version, and whether MPI was built in. */
#include "attn/version.h"

#include <stddef.h>

#ifdef ATTN_HAVE_MPI
#include <mpi.h>
#define ATTN_STR2(x) #x
#define ATTN_STR(x) ATTN_STR2(x)
#ifdef OMPI_MAJOR_VERSION
#define ATTN_MPI_NAME "Open MPI " ATTN_STR(OMPI_MAJOR_VERSION) "." ATTN_STR(OMPI_MINOR_VERSION) \
    "." ATTN_STR(OMPI_RELEASE_VERSION) ", MPI " ATTN_STR(MPI_VERSION) "." ATTN_STR(MPI_SUBVERSION)
#else
#define ATTN_MPI_NAME "MPI " ATTN_STR(MPI_VERSION) "." ATTN_STR(MPI_SUBVERSION)
#endif
#endif

const char *attn_version(void) { return ATTN_VERSION_STRING; }

const char *attn_mpi_version(void)
{
#ifdef ATTN_HAVE_MPI
    return ATTN_MPI_NAME;
#else
    return NULL;
#endif
}
