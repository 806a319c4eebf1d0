/* meta: implementation pending. */
#include "lib/meta.h"
