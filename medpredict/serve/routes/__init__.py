"""The service's routes, one :class:`fastapi.APIRouter` per group.

``service`` (health), ``admin`` (model inventory and reload), ``predict`` (schemas
and JSON predictions), ``fhir`` (FHIR R4 RiskAssessment), ``cds`` (CDS Hooks) and
``page`` (the clinician web page). :func:`medpredict.serve.app.create_app`
includes them; the admin and predict routers are built per service because their
OpenAPI documents name the served models.
"""
