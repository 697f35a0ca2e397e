/*
 * The web UI's static files as read-only data in the binary, so the broker
 * serves its UI with no files on disk and nothing fetched from elsewhere.
 * For each entry of CONEY_UI_ASSETS: coney_ui_<symbol>_start and _end
 * around the file's bytes (.incbin paths are relative to the repository
 * root, where make runs the assembler). ui.c declares the same symbols
 * from the same list.
 */
#include "plugins/management/ui_assets.h"

    .macro coney_ui_asset sym, file
    .section .rodata.coney_ui, "a"
    .balign 16
    .globl coney_ui_\sym\()_start
    .hidden coney_ui_\sym\()_start
    .globl coney_ui_\sym\()_end
    .hidden coney_ui_\sym\()_end
coney_ui_\sym\()_start:
    .incbin "plugins/management/ui/\file"
coney_ui_\sym\()_end:
    .byte 0
    .endm

#define CONEY_UI_ASM(sym, file, type) coney_ui_asset sym, file ;
CONEY_UI_ASSETS(CONEY_UI_ASM)

/* Data only: no executable stack wanted. */
    .section .note.GNU-stack, "", @progbits
