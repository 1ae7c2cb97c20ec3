# cohort.mk: make rules for a cohort, from slides, an RNA table and a
# clinical table to cross-validated models and Kaplan-Meier plots.
#
# Include it from a Makefile that says where the inputs are:
#
#   SLIDES_DIR = /data/tcga-blca/slides       # every *.svs, *.tif, ... there
#   CLINICAL   = clinical.tsv                  # id, label, time, event
#   CLIN_OPTS  = --label-col subtype --time-col os_months --event-col os \
#                --time-unit months
#   RNA        = rna.tsv                       # optional (omics models)
#   WEIGHTS    = resnet50.safetensors          # share/mmpath/convert-resnet50.py
#   include /usr/local/share/mmpath/cohort.mk
#
# then `make -j4 -k` (one slide per job; -k goes on past a failed slide).
# Slides are kept as coordinates, not pixels (wsi-tile --coords-only, then
# patch-embed --slide): a 256 px tile is 196 KB of pixels, so caching pixels
# for a cohort is rarely wanted. Every output is written under a temporary
# name and renamed by the tool, so an interrupted make leaves no
# half-written file behind and the next make resumes where it stopped; a
# make with nothing changed does nothing.
#
# Targets: all (the default: summary), coords, features, omics, cv, plots,
# summary, status (which slides failed and why), clean.
#
# SPDX-License-Identifier: MIT

# ---- inputs and tools (set any of these before the include, or on the
# command line: make WEIGHTS=random:7)
MMPATH_BIN ?=
# where mm-train finds its per-model configs (MODEL.conf) when the tools
# are not installed (a build tree): the share/mmpath of the sources
MMPATH_DATADIR ?=
ifneq ($(MMPATH_DATADIR),)
export MMPATH_DATADIR
endif
OUT ?= out
SLIDES_DIR ?= slides
SLIDE_EXTS ?= svs tif tiff ndpi mrxs scn vms vmu bif svslide
# slide ids (file names without the extension) to leave out
EXCLUDE ?=
CLINICAL ?= clinical.tsv
CLIN_OPTS ?=
# two columns: slide id, patient (several slides of one patient: one bag)
PATIENT_MAP ?=
RNA ?=

WSI_TILE ?= $(MMPATH_BIN)wsi-tile
PATCH_EMBED ?= $(MMPATH_BIN)patch-embed
RNA_SELECT ?= $(MMPATH_BIN)rna-select
MM_TRAIN ?= $(MMPATH_BIN)mm-train
KM_PLOT ?= $(MMPATH_BIN)km-plot
MPK ?= $(MMPATH_BIN)mpk

# ---- options of each stage
THREADS ?= 1
WSI_TILE_OPTS ?= --mag 20 --size 256
# random:SEED builds deterministic random ResNet-50 weights: a pipeline
# check, not ImageNet features. Point WEIGHTS at converted ImageNet weights
# for a real cohort.
WEIGHTS ?= random:1
PATCH_EMBED_OPTS ?= --layer 3
# unsupervised by default, so no label leaks across the CV folds
RNA_SELECT_OPTS ?= --genes-in rows --log2p1 --impute mean --top-var 200 --zscore
# models (mm-train --model) and tasks (subtype: --label-col; survival:
# --time-col/--event-col) to cross-validate
MODELS ?= abmil snn abmil+snn
TASKS ?= subtype survival
FOLDS ?= 5
SEED ?= 1
TRAIN_OPTS ?=
SURV_OPTS ?= --loss nll
KM_OPTS ?= --split median

# ---- what there is
SLIDE_FILES := $(foreach e,$(SLIDE_EXTS),$(wildcard $(SLIDES_DIR)/*.$(e)))
SLIDE_IDS := $(filter-out $(EXCLUDE),$(sort $(basename $(notdir $(SLIDE_FILES)))))
COORDS := $(SLIDE_IDS:%=$(OUT)/coords/%.coords.mpk)
FEATS := $(SLIDE_IDS:%=$(OUT)/feat/%.feat.mpk)
OMICS := $(if $(RNA),$(OUT)/rna.mpk)
PMAP := $(if $(PATIENT_MAP),--patient-map $(PATIENT_MAP))

# which inputs a model reads: slides, omics, or both
mm_slides = $(if $(filter-out snn,$(1)),--slides $(OUT)/feat)
mm_omics = $(if $(filter snn abmil+snn,$(1)),--omics $(OMICS))
mm_deps = $(if $(filter-out snn,$(1)),$(FEATS)) $(if $(filter snn abmil+snn,$(1)),$(OMICS))

.PHONY: all coords features omics cv plots summary status clean
.DELETE_ON_ERROR:
.SECONDARY:

all: summary

coords: $(COORDS)
features: $(FEATS)
omics: $(OMICS)

# ---- slides: coordinates, then features (one rule per slide extension;
# make picks the one whose slide exists). A failed slide leaves its log in
# $(OUT)/log and no output; `make status` lists them.
define mm_slide_rules
$(OUT)/coords/%.coords.mpk: $(SLIDES_DIR)/%.$(1)
	@mkdir -p $$(@D) $(OUT)/log
	@echo "wsi-tile $$*"
	@$(WSI_TILE) $(WSI_TILE_OPTS) --coords-only -o $$@ $$< \
	    2>$(OUT)/log/$$*.wsi-tile.log || { tail -n 3 $(OUT)/log/$$*.wsi-tile.log >&2; exit 1; }
$(OUT)/feat/%.feat.mpk: $(OUT)/coords/%.coords.mpk $(SLIDES_DIR)/%.$(1)
	@mkdir -p $$(@D) $(OUT)/log
	@echo "patch-embed $$*"
	@$(PATCH_EMBED) --weights $(WEIGHTS) $(PATCH_EMBED_OPTS) -@ $(THREADS) \
	    --slide $$(word 2,$$^) -o $$@ $$< \
	    2>$(OUT)/log/$$*.patch-embed.log || { tail -n 3 $(OUT)/log/$$*.patch-embed.log >&2; exit 1; }
endef
$(foreach e,$(SLIDE_EXTS),$(eval $(call mm_slide_rules,$(e))))

# ---- omics: the RNA table to an omics stream
$(OUT)/rna.mpk: $(RNA)
	@mkdir -p $(@D)
	@echo "rna-select $(notdir $<)"
	@$(RNA_SELECT) $(RNA_SELECT_OPTS) -o $@ $<

# ---- cross-validation: one run per task and model. mm-train cv writes
# $(OUT)/cv/TASK/DIR/{predictions.mpk,splits_K.csv,fold_K/} (DIR: the model
# name with + as _) and one summary line, kept in $(OUT)/cv/TASK/MODEL.txt.
mm_dir = $(subst +,_,$(1))
CV_SUMMARIES := $(foreach t,$(TASKS),$(foreach m,$(MODELS),$(OUT)/cv/$(t)/$(m).txt))
cv: $(CV_SUMMARIES)

define mm_cv_rule
$(OUT)/cv/$(1)/$(2).txt: $(call mm_deps,$(2)) $(CLINICAL)
	@mkdir -p $$(@D)
	@echo "mm-train cv $(1) $(2)"
	@$(MM_TRAIN) cv --model $(2) --task $(1) $(if $(filter survival,$(1)),$(SURV_OPTS)) \
	    $(call mm_slides,$(2)) $(call mm_omics,$(2)) --clinical $(CLINICAL) $(CLIN_OPTS) \
	    $(PMAP) --folds $(FOLDS) --seed $(SEED) -@ $(THREADS) $(TRAIN_OPTS) \
	    -o $(OUT)/cv/$(1) >$$@.tmp && mv $$@.tmp $$@
endef
$(foreach t,$(TASKS),$(foreach m,$(MODELS),$(eval $(call mm_cv_rule,$(t),$(m)))))

# ---- Kaplan-Meier plots of the out-of-fold risk (survival task): split
# at the median, log-rank test; km-MODEL.svg and .png, numbers in .txt
PLOTS := $(if $(filter survival,$(TASKS)),$(MODELS:%=$(OUT)/km-%.svg))
plots: $(PLOTS)
$(OUT)/km-%.svg: $(OUT)/cv/survival/%.txt
	@echo "km-plot $*"
	@$(KM_PLOT) $(KM_OPTS) --title "$* (out-of-fold risk, median split)" \
	    --png $(OUT)/km-$*.png -o $@ $(OUT)/cv/survival/$(call mm_dir,$*)/predictions.mpk \
	    >$(OUT)/km-$*.txt

# ---- one line per model: subtype accuracy, survival C-index, log-rank p
summary: $(CV_SUMMARIES) $(PLOTS)
	@for m in $(MODELS); do \
	    line="model=$$m"; \
	    if [ -f $(OUT)/cv/subtype/$$m.txt ]; then \
	        a=$$(tr ' ' '\n' <$(OUT)/cv/subtype/$$m.txt | sed -n 's/^accuracy_mean=//p'); \
	        line="$$line accuracy=$$a"; fi; \
	    if [ -f $(OUT)/cv/survival/$$m.txt ]; then \
	        c=$$(tr ' ' '\n' <$(OUT)/cv/survival/$$m.txt | sed -n 's/^cindex_mean=//p'); \
	        p=$$(sed -n 's/^logrank_p=//p' $(OUT)/km-$$m.txt); \
	        line="$$line cindex=$$c logrank_p=$$p km=$(OUT)/km-$$m.svg,$(OUT)/km-$$m.png"; fi; \
	    echo "$$line"; \
	done

# ---- which slides have no features, with the last line of their log
status:
	@n=0; for id in $(SLIDE_IDS); do \
	    [ -f $(OUT)/feat/$$id.feat.mpk ] && continue; n=$$((n + 1)); \
	    why=$$(cat $(OUT)/log/$$id.*.log 2>/dev/null | tail -n 1); \
	    echo "$$id: $${why:-not processed yet}"; \
	done; echo "$$n of $(words $(SLIDE_IDS)) slides without features"

clean:
	rm -rf $(OUT)
