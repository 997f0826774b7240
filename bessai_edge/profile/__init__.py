"""Device profiles: loading and validation, read planning and SunSpec discovery.

``load_profile(name_or_path)`` returns a validated ``Profile``; ``profile.plan()``
returns the ``ReadPlan`` the scan loop runs; ``sunspec.discover(read, unit_id)`` walks
a SunSpec device's model chain for the plans of SunSpec profiles.
"""

from bessai_edge.profile.loader import load_profile, parse_profile
from bessai_edge.profile.model import PointDef, Profile
from bessai_edge.profile.registry import bundled_profiles, registry_dir, resolve_profile_path

__all__ = ["PointDef", "Profile", "bundled_profiles", "load_profile", "parse_profile",
           "registry_dir", "resolve_profile_path"]
