"""Imports every table module so ``SQLModel.metadata`` is complete (Alembic autogenerate, tests)."""

from confsvc.endpoints import models as endpoints_models  # noqa: F401
from confsvc.users import models as users_models  # noqa: F401
from confsvc import events as events_models  # noqa: F401
from confsvc.scheduling import models as scheduling_models  # noqa: F401  (idempotency_keys too)
from confsvc.calendar import models as calendar_models  # noqa: F401
from confsvc.live import models as live_models  # noqa: F401
from confsvc.mail import models as mail_models  # noqa: F401
from confsvc.calls import models as call_models  # noqa: F401
from confsvc.stats import summary as stats_summary  # noqa: F401
from confsvc.scheduling import site_group_models  # noqa: F401
from confsvc import health as health_models  # noqa: F401
from confsvc.scheduling import request_models  # noqa: F401
