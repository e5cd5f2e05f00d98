/*
 * ucum.c -- UCUM unit parsing and conversion for the units clinical data uses (ucum.h).
 *
 * A recursive-descent parser over the UCUM grammar turns a unit expression into a
 * dimension vector and an exact rational factor (numerator mantissa * 10^exp over a
 * denominator mantissa). Atoms come from the table below; each row gives the atom's
 * definition in base units, so "mm[Hg]" is prefix m (10^-3) times atom m[Hg]
 * (133322 g.m-1.s-2). Factors are reduced by their gcd after every step so products of
 * a few clinical units stay far from 128-bit overflow; an overflow is reported as
 * ERR_TOOBIG, never wrapped.
 *
 * The table is deliberately the clinical subset (SI base and derived units, US customary
 * length/mass/volume, pressure, energy, enzyme and international units, temperatures,
 * ratios); unknown atoms are ERR_INVALID, which callers turn into "not comparable".
 */
#include "fhirpath/ucum.h"

#include <stdio.h>
#include <string.h>

#include "base/err.h"

typedef unsigned __int128 u128;

#define FP_UCUM_MAX_DEPTH 16 /* nested parentheses */

enum {
    D_M = FP_UCUM_M,
    D_S = FP_UCUM_S,
    D_G = FP_UCUM_G,
    D_RAD = FP_UCUM_RAD,
    D_K = FP_UCUM_K,
    D_C = FP_UCUM_C,
    D_CD = FP_UCUM_CD,
    D_MOL = FP_UCUM_MOL,
    D_IU = FP_UCUM_IU,
    D_ARB = FP_UCUM_ARB
};

typedef struct atom {
    const char *code;
    uint8_t metric;  /* takes SI prefixes */
    uint8_t special; /* FP_UCUM_CEL / FP_UCUM_DEGF, or ARBITRARY */
    int8_t dim[FP_UCUM_NDIM];
    int64_t num_mant;
    int32_t num_exp;
    int64_t den_mant;  /* 0 means 1 */
    __int128 big_mant; /* used instead of num_mant when non-zero (long constants) */
} atom;

#define ARBITRARY 3 /* atom marker: an arbitrary unit (its own base, see ucum.h) */
#define DIM(...)                                                                                   \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }
static const atom ATOMS[] = {
    /* base units */
    {"m", 1, 0, DIM([D_M] = 1), 1, 0, 0, 0},
    {"s", 1, 0, DIM([D_S] = 1), 1, 0, 0, 0},
    {"g", 1, 0, DIM([D_G] = 1), 1, 0, 0, 0},
    {"rad", 1, 0, DIM([D_RAD] = 1), 1, 0, 0, 0},
    {"K", 1, 0, DIM([D_K] = 1), 1, 0, 0, 0},
    {"C", 1, 0, DIM([D_C] = 1), 1, 0, 0, 0},
    {"cd", 1, 0, DIM([D_CD] = 1), 1, 0, 0, 0},
    {"mol", 1, 0, DIM([D_MOL] = 1), 1, 0, 0, 0},
    {"[iU]", 1, 0, DIM([D_IU] = 1), 1, 0, 0, 0},
    {"[IU]", 1, 0, DIM([D_IU] = 1), 1, 0, 0, 0},
    /* dimensionless */
    {"%", 0, 0, DIM(0), 1, -2, 0, 0},
    {"[ppth]", 0, 0, DIM(0), 1, -3, 0, 0},
    {"[ppm]", 0, 0, DIM(0), 1, -6, 0, 0},
    {"[ppb]", 0, 0, DIM(0), 1, -9, 0, 0},
    {"sr", 1, 0, DIM([D_RAD] = 2), 1, 0, 0, 0},
    {"[HPF]", 0, 0, DIM(0), 1, 0, 0, 0}, /* per high/low power field: counts */
    {"[LPF]", 0, 0, DIM(0), 1, 0, 0, 0},
    {"deg", 0, 0, DIM([D_RAD] = 1), 0, -22, 0, (__int128)174532925199432957ll * 1000 + 692},
    /* time */
    {"min", 0, 0, DIM([D_S] = 1), 60, 0, 0, 0},
    {"h", 0, 0, DIM([D_S] = 1), 3600, 0, 0, 0},
    {"d", 0, 0, DIM([D_S] = 1), 86400, 0, 0, 0},
    {"wk", 0, 0, DIM([D_S] = 1), 604800, 0, 0, 0},
    {"mo", 0, 0, DIM([D_S] = 1), 2629800, 0, 0, 0},
    {"mo_j", 0, 0, DIM([D_S] = 1), 2629800, 0, 0, 0},
    {"mo_g", 0, 0, DIM([D_S] = 1), 2629746, 0, 0, 0},
    {"a", 0, 0, DIM([D_S] = 1), 31557600, 0, 0, 0},
    {"a_j", 0, 0, DIM([D_S] = 1), 31557600, 0, 0, 0},
    {"a_g", 0, 0, DIM([D_S] = 1), 31556952, 0, 0, 0},
    {"Hz", 1, 0, DIM([D_S] = -1), 1, 0, 0, 0},
    {"Bq", 1, 0, DIM([D_S] = -1), 1, 0, 0, 0},
    {"Ci", 1, 0, DIM([D_S] = -1), 37, 9, 0, 0},
    /* length, area, volume */
    {"[in_i]", 0, 0, DIM([D_M] = 1), 254, -4, 0, 0},
    {"[ft_i]", 0, 0, DIM([D_M] = 1), 3048, -4, 0, 0},
    {"[yd_i]", 0, 0, DIM([D_M] = 1), 9144, -4, 0, 0},
    {"[mi_i]", 0, 0, DIM([D_M] = 1), 1609344, -3, 0, 0},
    {"[nmi_i]", 0, 0, DIM([D_M] = 1), 1852, 0, 0, 0},
    {"L", 1, 0, DIM([D_M] = 3), 1, -3, 0, 0},
    {"l", 1, 0, DIM([D_M] = 3), 1, -3, 0, 0},
    {"[gal_us]", 0, 0, DIM([D_M] = 3), 3785411784ll, -12, 0, 0},
    {"[qt_us]", 0, 0, DIM([D_M] = 3), 946352946ll, -12, 0, 0},
    {"[pt_us]", 0, 0, DIM([D_M] = 3), 473176473ll, -12, 0, 0},
    {"[cup_us]", 0, 0, DIM([D_M] = 3), 2365882365ll, -13, 0, 0},
    {"[foz_us]", 0, 0, DIM([D_M] = 3), 295735295625ll, -16, 0, 0},
    {"[tbs_us]", 0, 0, DIM([D_M] = 3), 1478676478125ll, -17, 0, 0},
    {"[tsp_us]", 0, 0, DIM([D_M] = 3), 492892159375ll, -17, 0, 0},
    {"[drp]", 0, 0, DIM([D_M] = 3), 5, -8, 0, 0},
    /* mass */
    {"t", 1, 0, DIM([D_G] = 1), 1, 6, 0, 0},
    {"[lb_av]", 0, 0, DIM([D_G] = 1), 45359237, -5, 0, 0},
    {"[oz_av]", 0, 0, DIM([D_G] = 1), 28349523125ll, -9, 0, 0},
    {"[gr]", 0, 0, DIM([D_G] = 1), 6479891, -8, 0, 0},
    {"[stone_av]", 0, 0, DIM([D_G] = 1), 635029318, -5, 0, 0},
    {"u", 1, 0, DIM([D_G] = 1), 16605402, -31, 0, 0},
    /* mechanics, pressure, energy, power */
    {"N", 1, 0, DIM([D_G] = 1, [D_M] = 1, [D_S] = -2), 1, 3, 0, 0},
    {"Pa", 1, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -2), 1, 3, 0, 0},
    {"bar", 1, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -2), 1, 8, 0, 0},
    {"atm", 0, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -2), 101325, 3, 0, 0},
    {"m[Hg]", 1, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -2), 133322, 3, 0, 0},
    {"m[H2O]", 1, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -2), 980665, 1, 0, 0},
    {"[in_i'Hg]", 0, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -2), 3386388, -3, 0, 0},
    /* psi = 453.59237 g * 9.80665 m/s2 / (0.0254 m)^2 */
    {"[psi]", 0, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -2), 0, -2, 64516,
     (__int128)45359237 * 980665},
    {"J", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 1, 3, 0, 0},
    {"W", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -3), 1, 3, 0, 0},
    {"cal", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 4184, 0, 0, 0},
    {"[Cal]", 0, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 4184, 3, 0, 0},
    {"eV", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 160217733, -24, 0, 0},
    {"Gy", 1, 0, DIM([D_M] = 2, [D_S] = -2), 1, 0, 0, 0},
    {"Sv", 1, 0, DIM([D_M] = 2, [D_S] = -2), 1, 0, 0, 0},
    /* electricity */
    {"A", 1, 0, DIM([D_C] = 1, [D_S] = -1), 1, 0, 0, 0},
    {"V", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2, [D_C] = -1), 1, 3, 0, 0},
    {"Ohm", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -1, [D_C] = -2), 1, 3, 0, 0},
    {"S", 1, 0, DIM([D_G] = -1, [D_M] = -2, [D_S] = 1, [D_C] = 2), 1, -3, 0, 0},
    {"F", 1, 0, DIM([D_G] = -1, [D_M] = -2, [D_S] = 2, [D_C] = 2), 1, -3, 0, 0},
    /* amount of substance, catalytic activity */
    {"eq", 1, 0, DIM([D_MOL] = 1), 1, 0, 0, 0},
    {"osm", 1, 0, DIM([D_MOL] = 1), 1, 0, 0, 0},
    {"kat", 1, 0, DIM([D_MOL] = 1, [D_S] = -1), 1, 0, 0, 0},
    {"U", 1, 0, DIM([D_MOL] = 1, [D_S] = -1), 1, -6, 60, 0},
    /* arbitrary units: each commensurable only with itself */
    {"[arb'U]", 0, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[CFU]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[PFU]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[FFU]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[BAU]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[AU]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[USP'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[APL'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[GPL'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[MPL'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[IR]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[PNU]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[PRU]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[Lf]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[TCID_50]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[CCID_50]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[EID_50]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[D'ag'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[Amb'a'1'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[beth'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[todd'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[dye'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[smgy'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[bdsk'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[ka'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[knk'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[mclg'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[tb'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[hnsf'U]", 1, ARBITRARY, DIM(0), 1, 0, 0, 0},
    /* pH is a logarithmic scale: treated like an arbitrary unit (comparable with pH only) */
    {"[pH]", 0, ARBITRARY, DIM(0), 1, 0, 0, 0},
    {"[kn_i]", 0, 0, DIM([D_M] = 1, [D_S] = -1), 1852, 0, 3600, 0},
    /* more dimensionless, lengths, areas, volumes and masses seen in clinical data */
    {"[pptr]", 0, 0, DIM(0), 1, -12, 0, 0},
    {"[pi]", 0, 0, DIM(0), 0, -20, 0, (__int128)3141592653589793238ll * 100 + 46},
    {"'", 0, 0, DIM([D_RAD] = 1), 0, -22, 60, (__int128)174532925199432957ll * 1000 + 692},
    {"''", 0, 0, DIM([D_RAD] = 1), 0, -22, 3600, (__int128)174532925199432957ll * 1000 + 692},
    {"bit", 1, 0, DIM(0), 1, 0, 0, 0},
    {"By", 1, 0, DIM(0), 8, 0, 0, 0},
    {"Bd", 1, 0, DIM([D_S] = -1), 1, 0, 0, 0},
    {"Ao", 0, 0, DIM([D_M] = 1), 1, -10, 0, 0},
    {"AU", 0, 0, DIM([D_M] = 1), 149597870691ll, 0, 0, 0},
    {"[Ch]", 0, 0, DIM([D_M] = 1), 1, -3, 3, 0},
    {"[mil_i]", 0, 0, DIM([D_M] = 1), 254, -7, 0, 0},
    {"[hd_i]", 0, 0, DIM([D_M] = 1), 1016, -4, 0, 0},
    {"[fth_i]", 0, 0, DIM([D_M] = 1), 18288, -4, 0, 0},
    {"[mesh_i]", 0, 0, DIM([D_M] = -1), 1, 4, 254, 0},
    {"[diop]", 0, 0, DIM([D_M] = -1), 1, 0, 0, 0},
    {"Ky", 1, 0, DIM([D_M] = -1), 1, 2, 0, 0},
    {"ar", 1, 0, DIM([D_M] = 2), 1, 2, 0, 0},
    {"b", 1, 0, DIM([D_M] = 2), 1, -28, 0, 0},
    {"[sin_i]", 0, 0, DIM([D_M] = 2), 64516, -8, 0, 0},
    {"[sft_i]", 0, 0, DIM([D_M] = 2), 9290304, -8, 0, 0},
    {"[syd_i]", 0, 0, DIM([D_M] = 2), 83612736, -8, 0, 0},
    {"[cin_i]", 0, 0, DIM([D_M] = 3), 16387064, -12, 0, 0},
    {"[cft_i]", 0, 0, DIM([D_M] = 3), 28316846592ll, -12, 0, 0},
    {"[cyd_i]", 0, 0, DIM([D_M] = 3), 764554857984ll, -12, 0, 0},
    {"[bf_i]", 0, 0, DIM([D_M] = 3), 2359737216ll, -12, 0, 0},
    {"[cr_i]", 0, 0, DIM([D_M] = 3), 3624556363776ll, -12, 0, 0},
    {"st", 1, 0, DIM([D_M] = 3), 1, 0, 0, 0},
    {"[gal_wi]", 0, 0, DIM([D_M] = 3), 3785411784ll, -12, 0, 0},
    {"[bbl_us]", 0, 0, DIM([D_M] = 3), 158987294928ll, -12, 0, 0},
    {"[gil_us]", 0, 0, DIM([D_M] = 3), 11829411825ll, -14, 0, 0},
    {"[fdr_us]", 0, 0, DIM([D_M] = 3), 36966911953125ll, -19, 0, 0},
    {"[min_us]", 0, 0, DIM([D_M] = 3), 61611519921875ll, -21, 0, 0},
    {"[gal_br]", 0, 0, DIM([D_M] = 3), 454609, -8, 0, 0},
    {"[qt_br]", 0, 0, DIM([D_M] = 3), 11365225, -10, 0, 0},
    {"[pt_br]", 0, 0, DIM([D_M] = 3), 56826125, -11, 0, 0},
    {"[gil_br]", 0, 0, DIM([D_M] = 3), 1420653125, -13, 0, 0},
    {"[foz_br]", 0, 0, DIM([D_M] = 3), 284130625, -13, 0, 0},
    {"[dr_av]", 0, 0, DIM([D_G] = 1), 17718451953125ll, -13, 0, 0},
    {"[scwt_av]", 0, 0, DIM([D_G] = 1), 45359237, -3, 0, 0},
    {"[lcwt_av]", 0, 0, DIM([D_G] = 1), 5080234544ll, -5, 0, 0},
    {"[ston_av]", 0, 0, DIM([D_G] = 1), 90718474, -2, 0, 0},
    {"[lton_av]", 0, 0, DIM([D_G] = 1), 10160469088ll, -4, 0, 0},
    {"[pwt_tr]", 0, 0, DIM([D_G] = 1), 155517384, -8, 0, 0},
    {"[oz_tr]", 0, 0, DIM([D_G] = 1), 311034768, -7, 0, 0},
    {"[lb_tr]", 0, 0, DIM([D_G] = 1), 3732417216ll, -7, 0, 0},
    {"[sc_ap]", 0, 0, DIM([D_G] = 1), 12959782, -7, 0, 0},
    {"[dr_ap]", 0, 0, DIM([D_G] = 1), 38879346, -7, 0, 0},
    {"[oz_ap]", 0, 0, DIM([D_G] = 1), 311034768, -7, 0, 0},
    {"[lb_ap]", 0, 0, DIM([D_G] = 1), 3732417216ll, -7, 0, 0},
    {"g%", 1, 0, DIM([D_G] = 1, [D_M] = -3), 1, 4, 0, 0},
    {"a_t", 0, 0, DIM([D_S] = 1), 31556925216ll, -3, 0, 0},
    {"mo_s", 0, 0, DIM([D_S] = 1), 2551442976ll, -3, 0, 0},
    {"[S]", 0, 0, DIM([D_S] = 1), 1, -13, 0, 0},
    {"[MET]", 0, 0, DIM([D_M] = 3, [D_S] = -1, [D_G] = -1), 35, -10, 60, 0},
    /* mechanics and electromagnetism (cgs and SI) */
    {"[g]", 0, 0, DIM([D_M] = 1, [D_S] = -2), 980665, -5, 0, 0},
    {"Gal", 1, 0, DIM([D_M] = 1, [D_S] = -2), 1, -2, 0, 0},
    {"gf", 1, 0, DIM([D_G] = 1, [D_M] = 1, [D_S] = -2), 980665, -5, 0, 0},
    {"[lbf_av]", 0, 0, DIM([D_G] = 1, [D_M] = 1, [D_S] = -2), 0, -10, 0,
     (__int128)45359237 * 980665},
    {"dyn", 1, 0, DIM([D_G] = 1, [D_M] = 1, [D_S] = -2), 1, -2, 0, 0},
    {"erg", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 1, -4, 0, 0},
    {"P", 1, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -1), 1, 2, 0, 0},
    {"St", 1, 0, DIM([D_M] = 2, [D_S] = -1), 1, -4, 0, 0},
    {"att", 0, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -2), 980665, 2, 0, 0},
    {"[in_i'H2O]", 0, 0, DIM([D_G] = 1, [D_M] = -1, [D_S] = -2), 24908891, -2, 0, 0},
    {"cal_th", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 4184, 0, 0, 0},
    {"cal_IT", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 41868, -1, 0, 0},
    {"cal_m", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 419002, -2, 0, 0},
    {"cal_[15]", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 418580, -2, 0, 0},
    {"cal_[20]", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -2), 418190, -2, 0, 0},
    {"mho", 1, 0, DIM([D_G] = -1, [D_M] = -2, [D_S] = 1, [D_C] = 2), 1, -3, 0, 0},
    {"Wb", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -1, [D_C] = -1), 1, 3, 0, 0},
    {"Mx", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_S] = -1, [D_C] = -1), 1, -5, 0, 0},
    {"T", 1, 0, DIM([D_G] = 1, [D_S] = -1, [D_C] = -1), 1, 3, 0, 0},
    {"G", 1, 0, DIM([D_G] = 1, [D_S] = -1, [D_C] = -1), 1, -1, 0, 0},
    {"H", 1, 0, DIM([D_G] = 1, [D_M] = 2, [D_C] = -2), 1, 3, 0, 0},
    {"R", 1, 0, DIM([D_C] = 1, [D_G] = -1), 258, -9, 0, 0},
    {"RAD", 1, 0, DIM([D_M] = 2, [D_S] = -2), 1, -2, 0, 0},
    {"REM", 1, 0, DIM([D_M] = 2, [D_S] = -2), 1, -2, 0, 0},
    {"lm", 1, 0, DIM([D_CD] = 1, [D_RAD] = 2), 1, 0, 0, 0},
    {"lx", 1, 0, DIM([D_CD] = 1, [D_RAD] = 2, [D_M] = -2), 1, 0, 0, 0},
    {"ph", 1, 0, DIM([D_CD] = 1, [D_RAD] = 2, [D_M] = -2), 1, -4, 0, 0},
    {"sb", 1, 0, DIM([D_CD] = 1, [D_M] = -2), 1, 4, 0, 0},
    /* temperature (special: offset scales) */
    {"Cel", 0, FP_UCUM_CEL, DIM([D_K] = 1), 1, 0, 0, 0},
    {"[degF]", 0, FP_UCUM_DEGF, DIM([D_K] = 1), 5, 0, 9, 0},
};
#undef DIM

static const struct {
    const char *sym;
    int exp;
} PREFIXES[] = {
    {"da", 1}, {"Y", 24},  {"Z", 21},  {"E", 18},  {"P", 15},  {"T", 12},  {"G", 9},
    {"M", 6},  {"k", 3},   {"h", 2},   {"d", -1},  {"c", -2},  {"m", -3},  {"u", -6},
    {"n", -9}, {"p", -12}, {"f", -15}, {"a", -18}, {"z", -21}, {"y", -24},
};

/* ---- exact factor arithmetic ----------------------------------------------------------------- */

static __int128 gcd128(__int128 a, __int128 b)
{
    if (a < 0)
        a = -a;
    if (b < 0)
        b = -b;
    if (a <= UINT64_MAX && b <= UINT64_MAX) { /* the usual case: 64-bit division is cheap */
        uint64_t x = (uint64_t)a, y = (uint64_t)b;
        while (y) {
            uint64_t t = x % y;
            x = y;
            y = t;
        }
        return x;
    }
    while (b) {
        __int128 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Move trailing zeros of mantissas into exponents, fold den.exp into num.exp and divide
 * out common factors. */
/* Strip trailing decimal zeros of a positive mantissa into its exponent. */
static void strip_zeros(fp_ucum_num *x)
{
    if (x->mant == 0)
        return;
    while (x->mant > UINT64_MAX && x->mant % 10 == 0) {
        x->mant /= 10;
        x->exp++;
    }
    if (x->mant <= UINT64_MAX) {
        uint64_t m = (uint64_t)x->mant;
        while (m % 10 == 0) {
            m /= 10;
            x->exp++;
        }
        x->mant = m;
    }
}

static void reduce(fp_ucum *u)
{
    strip_zeros(&u->num);
    strip_zeros(&u->den);
    u->num.exp -= u->den.exp;
    u->den.exp = 0;
    __int128 g = gcd128(u->num.mant, u->den.mant);
    if (g > 1) {
        u->num.mant /= g;
        u->den.mant /= g;
    }
}

static void unity(fp_ucum *u)
{
    memset(u, 0, sizeof *u);
    u->num.mant = 1;
    u->den.mant = 1;
}

/* a * b (or a / b when inverse); ERR_TOOBIG on overflow. */
static int combine(fp_ucum *a, const fp_ucum *b, int inverse)
{
    fp_ucum_num bn = inverse ? b->den : b->num, bd = inverse ? b->num : b->den;
    int32_t bexp = inverse ? -b->num.exp : b->num.exp;
    bn.exp = 0;
    bd.exp = 0;
    /* Cross-reduce before multiplying to keep mantissas small. */
    __int128 g1 = gcd128(a->num.mant, bd.mant), g2 = gcd128(bn.mant, a->den.mant);
    if (g1 > 1) {
        a->num.mant /= g1;
        bd.mant /= g1;
    }
    if (g2 > 1) {
        bn.mant /= g2;
        a->den.mant /= g2;
    }
    if (__builtin_mul_overflow(a->num.mant, bn.mant, &a->num.mant) ||
        __builtin_mul_overflow(a->den.mant, bd.mant, &a->den.mant))
        return ERR_TOOBIG;
    a->num.exp += bexp;
    if (a->num.exp > 400 || a->num.exp < -400)
        return ERR_TOOBIG;
    if (b->dim[D_ARB] != 0) {
        if (a->dim[D_ARB] != 0 && a->arb != b->arb)
            return ERR_INVALID; /* two different arbitrary units: not supported */
        a->arb = b->arb;
    }
    for (int k = 0; k < FP_UCUM_NDIM; k++) {
        int d = a->dim[k] + (inverse ? -b->dim[k] : b->dim[k]);
        if (d > 127 || d < -127)
            return ERR_TOOBIG;
        a->dim[k] = (int8_t)d;
    }
    if (a->dim[D_ARB] == 0)
        a->arb = 0;
    reduce(a);
    return 0;
}

static int power(fp_ucum *u, int e)
{
    if (e == 1)
        return 0;
    if (e > 32 || e < -32)
        return ERR_TOOBIG;
    fp_ucum base = *u, r;
    unity(&r);
    int k = e < 0 ? -e : e;
    for (int i = 0; i < k; i++) {
        int rc = combine(&r, &base, e < 0);
        if (rc < 0)
            return rc;
    }
    r.special = 0;
    *u = r;
    return 0;
}

/* ---- parser -------------------------------------------------------------------------------------
 */

typedef struct parser {
    const char *s;
    size_t n, i;
    int depth;
} parser;

static int from_atom(const atom *a, int prefix_exp, fp_ucum *u)
{
    memset(u, 0, sizeof *u);
    memcpy(u->dim, a->dim, sizeof u->dim);
    u->num.mant = a->big_mant ? a->big_mant : a->num_mant;
    u->num.exp = a->num_exp + prefix_exp;
    u->den.mant = a->den_mant ? a->den_mant : 1;
    if (a->special == ARBITRARY) {
        u->dim[D_ARB] = 1;
        u->arb = (uint8_t)(a - ATOMS + 1);
    } else {
        u->special = a->special;
    }
    reduce(u);
    return 0;
}

static const atom *find_atom(const char *s, size_t n)
{
    for (size_t k = 0; k < sizeof ATOMS / sizeof *ATOMS; k++) {
        const char *c = ATOMS[k].code;
        if (c[0] == s[0] && strncmp(c, s, n) == 0 && c[n] == '\0')
            return &ATOMS[k];
    }
    return NULL;
}

static int lookup(const char *s, size_t n, fp_ucum *u)
{
    const atom *a = find_atom(s, n);
    if (a)
        return from_atom(a, 0, u);
    for (size_t p = 0; p < sizeof PREFIXES / sizeof *PREFIXES; p++) {
        if (PREFIXES[p].sym[0] != s[0])
            continue;
        size_t pl = strlen(PREFIXES[p].sym);
        if (pl < n && memcmp(PREFIXES[p].sym, s, pl) == 0) {
            a = find_atom(s + pl, n - pl);
            if (a && a->metric)
                return from_atom(a, PREFIXES[p].exp, u);
        }
    }
    return ERR_INVALID;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int skip_annotation(parser *p)
{
    if (p->i < p->n && p->s[p->i] == '{') {
        while (p->i < p->n && p->s[p->i] != '}') {
            if ((unsigned char)p->s[p->i] < 0x20 || (unsigned char)p->s[p->i] > 0x7e)
                return ERR_INVALID;
            p->i++;
        }
        if (p->i >= p->n)
            return ERR_INVALID;
        p->i++;
    }
    return 0;
}

/* Optional signed exponent; *e = 1 when absent. */
static int read_exponent(parser *p, int *e)
{
    size_t i = p->i;
    int neg = 0;
    if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) {
        neg = p->s[i] == '-';
        i++;
    }
    if (i >= p->n || !is_digit(p->s[i])) {
        if (i != p->i)
            return ERR_INVALID;
        *e = 1;
        return 0;
    }
    int v = 0;
    while (i < p->n && is_digit(p->s[i])) {
        v = v * 10 + (p->s[i] - '0');
        if (v > 1000)
            return ERR_TOOBIG;
        i++;
    }
    p->i = i;
    *e = neg ? -v : v;
    return 0;
}

static int p_term(parser *p, fp_ucum *out);

static int p_component(parser *p, fp_ucum *u)
{
    int rc;
    if (p->i >= p->n)
        return ERR_INVALID;
    char c = p->s[p->i];
    if (c == '(') {
        if (++p->depth > FP_UCUM_MAX_DEPTH)
            return ERR_TOOBIG;
        p->i++;
        if ((rc = p_term(p, u)) < 0)
            return rc;
        if (p->i >= p->n || p->s[p->i] != ')')
            return ERR_INVALID;
        p->i++;
        p->depth--;
        return skip_annotation(p);
    }
    if (c == '{') {
        unity(u);
        return skip_annotation(p);
    }
    if (is_digit(c)) {
        __int128 v = 0;
        size_t start = p->i;
        while (p->i < p->n && is_digit(p->s[p->i])) {
            v = v * 10 + (p->s[p->i] - '0');
            if (v > (__int128)1000000000000000000ll)
                return ERR_TOOBIG;
            p->i++;
        }
        unity(u);
        if (p->i - start == 2 && v == 10 && p->i < p->n &&
            (p->s[p->i] == '*' || p->s[p->i] == '^')) {
            p->i++;
            int e;
            if ((rc = read_exponent(p, &e)) < 0)
                return rc;
            u->num.exp = e; /* "10*" alone is the atom ten: e = 1 */
        } else {
            if (v == 0)
                return ERR_INVALID;
            u->num.mant = v;
            reduce(u);
        }
        return skip_annotation(p);
    }
    size_t start = p->i;
    while (p->i < p->n) {
        char ch = p->s[p->i];
        if (ch == '[') {
            while (p->i < p->n && p->s[p->i] != ']')
                p->i++;
            if (p->i >= p->n)
                return ERR_INVALID;
            p->i++;
            continue;
        }
        if (ch == '.' || ch == '/' || ch == '(' || ch == ')' || ch == '{' || ch == '}' ||
            is_digit(ch) || ch == '+' || ch == '-' || ch == ' ' || (unsigned char)ch < 0x21 ||
            (unsigned char)ch > 0x7e)
            break;
        p->i++;
    }
    if (p->i == start)
        return ERR_INVALID;
    if ((rc = lookup(p->s + start, p->i - start, u)) < 0)
        return rc;
    int e;
    if ((rc = read_exponent(p, &e)) < 0)
        return rc;
    if (u->special && e != 1)
        return ERR_INVALID;
    if ((rc = power(u, e)) < 0)
        return rc;
    return skip_annotation(p);
}

static int p_term(parser *p, fp_ucum *out)
{
    fp_ucum acc, comp;
    int rc, count = 0;
    if (p->i < p->n && p->s[p->i] == '/') {
        unity(&acc);
        count = 1; /* a leading '/' divides unity: "/min" */
    } else {
        if ((rc = p_component(p, &acc)) < 0)
            return rc;
        count = 1;
    }
    while (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == '/')) {
        int inverse = p->s[p->i] == '/';
        p->i++;
        if ((rc = p_component(p, &comp)) < 0)
            return rc;
        if (acc.special || comp.special)
            return ERR_INVALID; /* Cel and [degF] only stand alone */
        if ((rc = combine(&acc, &comp, inverse)) < 0)
            return rc;
        count++;
    }
    (void)count;
    *out = acc;
    return 0;
}

/* Per-thread memo of recently parsed unit texts: evaluation compares the same few units
 * over and over (every Observation.value against the same literal), and a hit costs a
 * hash and a memcmp instead of a parse. Only successful parses are kept. */
#define UCUM_MEMO_SLOTS 32
#define UCUM_MEMO_TEXT 40

typedef struct ucum_memo {
    uint8_t len; /* 0 = empty slot */
    char text[UCUM_MEMO_TEXT];
    fp_ucum u;
} ucum_memo;

static _Thread_local ucum_memo memo[UCUM_MEMO_SLOTS];

static unsigned memo_slot(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h % UCUM_MEMO_SLOTS;
}

int fp_ucum_parse(const char *text, size_t n, fp_ucum *out)
{
    if (n == 0) {
        unity(out);
        return 0;
    }
    ucum_memo *m = NULL;
    if (n < UCUM_MEMO_TEXT) {
        m = &memo[memo_slot(text, n)];
        if (m->len == n && memcmp(m->text, text, n) == 0) {
            *out = m->u;
            return 0;
        }
    }
    parser p = {text, n, 0, 0};
    fp_ucum u;
    int rc = p_term(&p, &u);
    if (rc < 0)
        return rc;
    if (p.i != n)
        return ERR_INVALID;
    if (m) {
        m->len = (uint8_t)n;
        memcpy(m->text, text, n);
        m->u = u;
    }
    *out = u;
    return 0;
}

bool fp_ucum_valid(const char *text, size_t n)
{
    fp_ucum u;
    return fp_ucum_parse(text, n, &u) == 0;
}

bool fp_ucum_commensurable(const fp_ucum *a, const fp_ucum *b)
{
    return memcmp(a->dim, b->dim, sizeof a->dim) == 0 && a->arb == b->arb;
}

bool fp_ucum_dimensionless(const fp_ucum *u)
{
    for (int k = 0; k < FP_UCUM_NDIM; k++) {
        if (u->dim[k])
            return false;
    }
    return !u->special;
}

/* ---- conversion ---------------------------------------------------------------------------------
 */

/* v * 10^e. */
static int dec_shift(fp_dec v, int e, fp_dec *out)
{
    int rc;
    while (e > 0) {
        int k = e > 18 ? 18 : e;
        __int128 f = 1;
        for (int j = 0; j < k; j++)
            f *= 10;
        fp_dec m = {f, 0};
        if ((rc = fp_dec_mul(v, m, &v)) < 0)
            return rc;
        e -= k;
    }
    while (e < 0) {
        int k = -e > 18 ? 18 : -e;
        if (v.scale + k <= FP_DEC_MAX_SCALE) {
            v.scale += k;
        } else {
            __int128 f = 1;
            for (int j = 0; j < k; j++)
                f *= 10;
            fp_dec d = {f, 0};
            if ((rc = fp_dec_div(v, d, &v)) < 0)
                return rc;
        }
        e += k;
    }
    *out = v;
    return 0;
}

/* v * num / den of u (no offset). */
static int apply_factor(fp_dec v, const fp_ucum_num *num, const fp_ucum_num *den, fp_dec *out)
{
    fp_dec m = {num->mant, 0};
    int rc;
    if ((rc = fp_dec_mul(v, m, &v)) < 0)
        return rc;
    if ((rc = dec_shift(v, num->exp - den->exp, &v)) < 0)
        return rc;
    if (den->mant != 1) {
        fp_dec d = {den->mant, 0};
        if ((rc = fp_dec_div(v, d, &v)) < 0)
            return rc;
    }
    *out = v;
    return 0;
}

static const fp_dec K_CEL = {27315, 2};  /* 273.15 */
static const fp_dec F_ZERO = {45967, 2}; /* 459.67 */

int fp_ucum_to_canonical(fp_dec value, const fp_ucum *u, fp_dec *out)
{
    int rc;
    if (u->special == FP_UCUM_CEL)
        return fp_dec_add(value, K_CEL, out);
    if (u->special == FP_UCUM_DEGF) {
        if ((rc = fp_dec_add(value, F_ZERO, &value)) < 0)
            return rc;
    }
    return apply_factor(value, &u->num, &u->den, out);
}

int fp_ucum_from_canonical(fp_dec canon, const fp_ucum *u, fp_dec *out)
{
    int rc;
    if (u->special == FP_UCUM_CEL)
        return fp_dec_sub(canon, K_CEL, out);
    if ((rc = apply_factor(canon, &u->den, &u->num, &canon)) < 0)
        return rc;
    if (u->special == FP_UCUM_DEGF)
        return fp_dec_sub(canon, F_ZERO, out);
    *out = canon;
    return 0;
}

int fp_ucum_convert(fp_dec value, const fp_ucum *from, const fp_ucum *to, fp_dec *out)
{
    if (!fp_ucum_commensurable(from, to))
        return ERR_INVALID;
    int rc;
    if (from->special || to->special) {
        fp_dec c;
        if ((rc = fp_ucum_to_canonical(value, from, &c)) < 0)
            return rc;
        return fp_ucum_from_canonical(c, to, out);
    }
    /* value * (nf / df) / (nt / dt) = value * (nf * dt) / (df * nt), reduced first. */
    fp_ucum r = *from;
    r.special = 0;
    if ((rc = combine(&r, to, 1)) < 0)
        return rc;
    return apply_factor(value, &r.num, &r.den, out);
}

int fp_ucum_cmp(fp_dec a, const fp_ucum *ua, fp_dec b, const fp_ucum *ub, int *out)
{
    if (!fp_ucum_commensurable(ua, ub))
        return ERR_INVALID;
    int rc;
    if (!ua->special && !ub->special) {
        /* a * (na/da) vs b * (nb/db): compare a * (na*db)/(da*nb) with b, exactly when the
         * ratio is a terminating decimal. */
        fp_ucum r = *ua;
        if (combine(&r, ub, 1) == 0 && r.den.mant == 1) {
            fp_dec x;
            if (apply_factor(a, &r.num, &r.den, &x) == 0) {
                *out = fp_dec_cmp(x, b);
                return 0;
            }
        }
    }
    fp_dec ca, cb;
    if ((rc = fp_ucum_to_canonical(a, ua, &ca)) < 0 || (rc = fp_ucum_to_canonical(b, ub, &cb)) < 0)
        return rc;
    *out = fp_dec_cmp(ca, cb);
    return 0;
}

/* ---- canonical text and unit algebra
 * -------------------------------------------------------------- */

static const char *const BASE_NAMES[FP_UCUM_NDIM] = {"m", "s",  "g",   "rad",  "K",
                                                     "C", "cd", "mol", "[iU]", "[arb'U]"};

/* The base atom of dimension k; an arbitrary unit is named by its own code. */
static const char *base_name(const fp_ucum *u, int k)
{
    if (k == D_ARB && u->arb > 0 && u->arb <= sizeof ATOMS / sizeof *ATOMS)
        return ATOMS[u->arb - 1].code;
    return BASE_NAMES[k];
}

size_t fp_ucum_canonical_text(const fp_ucum *u, char *dst, size_t cap)
{
    char tmp[FP_UCUM_UNIT_MAX * 2];
    size_t n = 0;
    int npos = 0, nneg = 0;
    for (int k = 0; k < FP_UCUM_NDIM; k++) {
        npos += u->dim[k] > 0;
        nneg += u->dim[k] < 0;
    }
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (n < sizeof tmp)                                                                        \
            n += (size_t)snprintf(tmp + n, sizeof tmp - n, __VA_ARGS__);                           \
    } while (0)
    for (int k = 0; k < FP_UCUM_NDIM; k++) {
        if (u->dim[k] > 0) {
            PUT("%s%s", n ? "." : "", base_name(u, k));
            if (u->dim[k] != 1)
                PUT("%d", u->dim[k]);
        }
    }
    if (nneg == 1) {
        for (int k = 0; k < FP_UCUM_NDIM; k++) {
            if (u->dim[k] < 0) {
                PUT("%s/%s", npos ? "" : "1", base_name(u, k));
                if (u->dim[k] != -1)
                    PUT("%d", -u->dim[k]);
            }
        }
    } else {
        for (int k = 0; k < FP_UCUM_NDIM; k++) {
            if (u->dim[k] < 0)
                PUT("%s%s%d", n ? "." : "", base_name(u, k), u->dim[k]);
        }
    }
    if (n == 0)
        PUT("1");
#undef PUT
    if (n >= sizeof tmp)
        n = sizeof tmp - 1;
    size_t len = n < cap ? n : (cap ? cap - 1 : 0);
    memcpy(dst, tmp, len);
    if (cap)
        dst[len] = '\0';
    return len;
}

int fp_ucum_mul(const fp_ucum *a, const fp_ucum *b, fp_ucum *out)
{
    if (a->special || b->special)
        return ERR_INVALID;
    fp_ucum r = *a;
    int rc = combine(&r, b, 0);
    if (rc < 0)
        return rc;
    *out = r;
    return 0;
}

int fp_ucum_div(const fp_ucum *a, const fp_ucum *b, fp_ucum *out)
{
    if (a->special || b->special)
        return ERR_INVALID;
    fp_ucum r = *a;
    int rc = combine(&r, b, 1);
    if (rc < 0)
        return rc;
    *out = r;
    return 0;
}
