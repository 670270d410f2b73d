"""bso_deploy.lazy.lazy_exports: names resolve to their module's attribute on first access."""

from __future__ import annotations

import pytest
from bso_deploy.export.nir.export import to_nir

from bso_deploy.io import atomic_write_json
from bso_deploy.lazy import lazy_exports


def test_a_lazy_name_is_the_attribute_of_its_module_relative_or_absolute():
    getattr_, dir_ = lazy_exports("bso_deploy.export.nir", {"to_nir": ".export", "atomic_write_json": "bso_deploy.io"},
                                  ["check_graph", "to_nir", "atomic_write_json"])
    assert getattr_("to_nir") is to_nir and getattr_("atomic_write_json") is atomic_write_json
    assert dir_() == ["atomic_write_json", "check_graph", "to_nir"]


def test_an_unknown_name_raises_attribute_error_naming_the_package():
    getattr_, _ = lazy_exports("some.package", {}, [])
    with pytest.raises(AttributeError, match=r"module 'some\.package' has no attribute 'missing'"):
        getattr_("missing")


def test_a_lazy_name_missing_from_all_is_refused():
    with pytest.raises(ValueError, match=r"some\.package: lazy names \['to_nir'\] are missing from __all__"):
        lazy_exports("some.package", {"to_nir": ".export"}, ["check_graph"])
