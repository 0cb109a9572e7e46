// SPDX-License-Identifier: Apache-2.0
// The fuzz build compiles stb_image from its header so the decoder itself is instrumented
// (coverage and ASan); its definitions take precedence over those of Debian's libstb.so.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
